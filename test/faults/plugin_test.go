package faults

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
	"zabbix-agent2-plugin-tcpstatus/testkit/agentprototest"
	"zabbix-agent2-plugin-tcpstatus/testkit/testutil"
)

// probe checks the plugin still serves: an Export of a key that needs no
// socket table is answered.
func (p *pluginProc) probe(t testing.TB) error {
	t.Helper()
	_, err := p.get(10*time.Second, "tcp.status", "nosuchstate")
	if isItemError(err, "Invalid first parameter") {
		return nil
	}
	return fmt.Errorf("probe after the fault: %v", err)
}

// TestPluginCorruptFrames sends what a broken agent, a corrupted stream or
// a host in the agent's Server= list (through a passive check the agent
// forwards) could: whatever the frame, the plugin goes on serving — it
// answers the request when its id and type can be read from the body
// (with an error unless the request is valid), drops the frame otherwise,
// and never answers twice. Only the agent hanging up ends it, with status
// 0, also in the middle of a frame. Never a panic, a hang, or another exit
// status (which takes agent 2 down).
func TestPluginCorruptFrames(t *testing.T) {
	rnd := rand.New(rand.NewPCG(1, 2))
	random := make([]byte, 4096)
	for i := range random {
		random[i] = byte(rnd.Uint32())
	}
	big := strings.Repeat("A", 15<<20)
	deep := func(depth int) string {
		return `{"id":90,"type":9,"private_options":` + strings.Repeat(`{"Name":"a","Nodes":[`, depth) + `{"Value":"YQ=="}` + strings.Repeat(`]}`, depth) + `}`
	}
	cases := []struct {
		name string
		raw  []byte
		// closeAfter: the agent closes the connection after sending; the
		// plugin must exit with status 0.
		closeAfter bool
		// answer: request 90 must be answered with an item error holding
		// this; "" when it must not be answered at all.
		answer string
		// validate: the answer is a Validate response.
		validate bool
	}{
		{name: "payload type 2", raw: frame(2, []byte(`{"id":90,"type":6,"key":"tcp.status"}`))},
		{name: "payload type 0xffffffff", raw: frame(0xffffffff, nil)},
		{name: "length 4 GiB, then the agent hangs up", raw: header(1, 0xffffffff), closeAfter: true},
		{name: "length above the cap", raw: frame(1, []byte(`{"id":90,"type":6,"key":"tcp.status[`+strings.Repeat("k", 16<<20)+`]"}`)), answer: "Request too large: 16777255 bytes, the limit is 16777216."},
		{name: "length above the cap, id after the key", raw: frame(1, []byte(`{"type":6,"key":"tcp.status[`+strings.Repeat("k", 16<<20)+`]","id":90}`))},
		{name: "length at the cap, body never sent", raw: append(header(1, 16<<20), `{"id":90,`...), closeAfter: true},
		{name: "random bytes, then the agent hangs up", raw: random, closeAfter: true},
		{name: "truncated header", raw: []byte{1, 0, 0}, closeAfter: true},
		{name: "truncated body", raw: append(header(1, 100), `{"id":90,"type":6,"key":"tcp.s`...), closeAfter: true},
		{name: "empty body", raw: frame(1, nil)},
		{name: "body not JSON", raw: frame(1, []byte(`{"id":90,"type":6,"key":`)), answer: "Cannot decode request: unexpected end of JSON input."},
		{name: "body a JSON array", raw: frame(1, []byte(`[1,2,3]`))},
		{name: "body JSON null", raw: frame(1, []byte(`null`))},
		{name: "id a string", raw: frame(1, []byte(`{"id":"90","type":6,"key":"tcp.status"}`)), answer: "Cannot decode request: json: cannot unmarshal string"},
		{name: "negative id", raw: frame(1, []byte(`{"id":-90,"type":6,"key":"tcp.status"}`))},
		{name: "fractional id", raw: frame(1, []byte(`{"id":90.5,"type":6,"key":"tcp.status"}`))},
		{name: "id above uint32", raw: frame(1, []byte(`{"id":4294967386,"type":6,"key":"tcp.status"}`))},
		{name: "trailing data", raw: frame(1, []byte(`{"id":90,"type":6,"key":"tcp.status","parameters":["listen"]}{"id":91}`)), answer: "Cannot decode request: invalid character"},
		{name: "nesting beyond the decoder's limit", raw: frame(1, []byte(`{"id":90,"type":6,"key":"tcp.status","x":`+strings.Repeat("[", 10001)+strings.Repeat("]", 10001)+`}`)), answer: "exceeded max depth"},
		{name: "Validate tree 5000 deep", raw: frame(1, []byte(deep(5000))), answer: "exceeded max depth", validate: true},
		{name: "Validate tree 100 deep", raw: frame(1, []byte(deep(100))), answer: "nested more than 16 names deep", validate: true},
		{name: "unknown message type", raw: frame(1, []byte(`{"id":90,"type":99}`))},
		{name: "response type sent to the plugin", raw: frame(1, []byte(`{"id":90,"type":7,"value":"1"}`))},
		{name: "key a number", raw: frame(1, []byte(`{"id":90,"type":6,"key":5}`)), answer: "Cannot decode request"},
		{name: "parameters a string", raw: frame(1, []byte(`{"id":90,"type":6,"key":"tcp.status","parameters":"x"}`)), answer: "Cannot decode request"},
		{name: "parameters with null", raw: frame(1, []byte(`{"id":90,"type":6,"key":"tcp.status","parameters":[null,1]}`)), answer: "Cannot decode request"},
		{name: "negative timeout", raw: frame(1, []byte(`{"id":90,"type":6,"key":"tcp.status","parameters":["bogus"],"timeout":-5}`)), answer: "Invalid first parameter"},
		{name: "huge timeout", raw: frame(1, []byte(`{"id":90,"type":6,"key":"tcp.status","parameters":["bogus"],"timeout":99999999999}`)), answer: "Invalid first parameter"},
		{name: "timeout overflowing a duration", raw: frame(1, []byte(`{"id":90,"type":6,"key":"tcp.status","parameters":["bogus"],"timeout":9223372037}`)), answer: "Invalid first parameter"},
		{name: "timeout beyond int64", raw: frame(1, []byte(`{"id":90,"type":6,"key":"tcp.status","timeout":1e30}`)), answer: "Cannot decode request"},
		{name: "unknown key", raw: frame(1, []byte(`{"id":90,"type":6,"key":"no.such.key"}`)), answer: "."},
		{name: "key of 1 MiB", raw: frame(1, []byte(`{"id":90,"type":6,"key":"`+strings.Repeat("k", 1<<20)+`"}`)), answer: "."},
		{name: "10000 parameters", raw: frame(1, mustJSON(map[string]any{"id": 90, "type": typeExport, "key": "tcp.status", "parameters": make([]string, 10000)})), answer: "Too many parameters."},
		{name: "parameter of 15 MiB", raw: frame(1, []byte(`{"id":90,"type":6,"key":"tcp.status","parameters":["`+big+`"]}`)), answer: "Invalid first parameter"},
		{name: "invalid UTF-8 and NUL in parameters", raw: frame(1, []byte("{\"id\":90,\"type\":6,\"key\":\"tcp.status\",\"parameters\":[\"\xff\xfe\\u0000\",\"\\u0000\"]}")), answer: "Invalid first parameter"},
		{name: "Configure with a broken tree", raw: frame(1, []byte(`{"id":90,"type":8,"global_options":{"Timeout":"x"},"private_options":{"Nodes":[{"Value":"!!"}]}}`))},
		{name: "Validate with garbage options", raw: frame(1, []byte(`{"id":90,"type":9,"private_options":{"Name":"TCPStatus","Nodes":[{"Name":"Source","Nodes":[{"Value":"Ym9ndXM="}]}]}}`)), answer: "Invalid option", validate: true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := startPlugin(t, pluginOpts{})
			// A generous time limit: a loaded machine must not turn the big
			// cases into timeouts.
			p.configure(map[string]string{"Timeout": "30"})
			ch := p.fake.Await(90)
			if err := p.send(c.raw); err != nil {
				t.Fatalf("send: %v", err)
			}
			if c.closeAfter {
				p.conn.CloseWrite()
				p.checkCleanExit(5 * time.Second)
				return
			}
			if c.answer != "" {
				select {
				case f := <-ch:
					r := decode(f)
					var err error
					if c.validate {
						if r.Type != typeValidateResp {
							t.Fatalf("answer of type %d, want a Validate response", r.Type)
						}
						err = &agentprototest.ItemError{Text: r.Error}
					} else {
						_, err = f.Result()
					}
					if !isItemError(err, c.answer) {
						t.Errorf("answer %v, want an error with %q", err, c.answer)
					} else if e := err.Error(); e[len(e)-1] != '.' || strings.ToUpper(e[:1]) != e[:1] {
						t.Errorf("error %q is not Zabbix style (capital letter, final period)", e)
					}
				case <-p.exited:
					t.Fatalf("plugin exited (%v) instead of answering\n%s", p.state, p.out.String())
				case <-time.After(40 * time.Second):
					t.Fatal("request not answered within 40 s")
				}
			}
			if err := p.probe(t); err != nil {
				t.Fatalf("%v\n%s", err, p.out.String())
			}
			if c.answer == "" {
				select {
				case r := <-ch:
					t.Errorf("a frame without a readable id and type was answered: %+v", r)
				default:
				}
			}
		})
	}
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// fifoProcRoot returns a procfs root whose net/tcp is a FIFO: with Source=proc
// a read of the socket table blocks until the test writes the table (feed)
// or for ever. The test holds the FIFO open for writing, so opening it never
// blocks but reading does.
func fifoProcRoot(t testing.TB) (root string, feed func(table string)) {
	t.Helper()
	root = testutil.WorldDir(t)
	net := filepath.Join(root, "net")
	if err := os.Mkdir(net, 0o755); err != nil {
		t.Fatal(err)
	}
	fifo := filepath.Join(net, "tcp")
	if err := syscall.Mkfifo(fifo, 0o666); err != nil {
		t.Fatal(err)
	}
	os.Chmod(fifo, 0o666)
	w, err := os.OpenFile(fifo, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	closeW := func() { once.Do(func() { w.Close() }) }
	t.Cleanup(closeW)
	return root, func(table string) {
		w.WriteString(table)
		closeW()
	}
}

// procTCPHeader is the first line of /proc/net/tcp.
const procTCPHeader = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"

// procTCPListen is one LISTEN socket on 127.0.0.1:port.
func procTCPListen(slot, port int) string {
	return fmt.Sprintf("%4d: 0100007F:%04X 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 %d 1 0000000000000000 100 0 0 10 0\n", slot, port, 1000+slot)
}

// TestPluginEOFMidRequest closes the connection while a request is being
// answered (its socket-table read blocked on a FIFO): the plugin must exit
// with status 0 promptly, not wait for the handler.
func TestPluginEOFMidRequest(t *testing.T) {
	root, _ := fifoProcRoot(t)
	p := startPlugin(t, pluginOpts{})
	p.configure(map[string]string{"ProcRoot": root, "Source": "proc", "Timeout": "30"})
	if _, _, err := p.export("tcp.status", []string{"listen"}, 0); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	if err := p.send(append(header(1, 50), `{"id":77,"type":6`...)); err != nil {
		t.Fatal(err)
	}
	p.conn.Close()
	p.checkCleanExit(5 * time.Second)
}

// TestPluginTerminate: Terminate with the id of either agent series ends
// the plugin with status 0 at once, also with a request in flight.
func TestPluginTerminate(t *testing.T) {
	for _, id := range []int{0, 7} {
		t.Run(fmt.Sprintf("id %d", id), func(t *testing.T) {
			root, _ := fifoProcRoot(t)
			p := startPlugin(t, pluginOpts{})
			p.configure(map[string]string{"ProcRoot": root, "Source": "proc"})
			p.export("tcp.status", nil, 0)
			start := time.Now()
			if err := p.sendMsg(map[string]any{"id": id, "type": typeTerminate}); err != nil {
				t.Fatal(err)
			}
			p.checkCleanExit(5 * time.Second)
			t.Logf("exited %v after Terminate", time.Since(start).Round(time.Millisecond))
		})
	}
}

// TestPluginThousandInFlight sends 1000 Export requests without waiting
// (agent 7.0's default capacity) over the real socket tables: every one is
// answered exactly once, with a value.
func TestPluginThousandInFlight(t *testing.T) {
	p := startPlugin(t, pluginOpts{})
	p.configure(map[string]string{"CacheTTL": "0"})
	keys := []struct {
		key    string
		params []string
	}{
		{"tcp.status", []string{"listen"}},
		{"tcp.status", []string{"established", "", "4"}},
		{"tcp.status.get", nil},
		{"tcp.status.get", []string{"22"}},
		{"tcp.status", []string{"timewait", "80"}},
	}
	const n = 1000
	chans := make([]<-chan agentprototest.Frame, n)
	start := time.Now()
	for i := range n {
		k := keys[i%len(keys)]
		_, ch, err := p.export(k.key, k.params, 30)
		if err != nil {
			t.Fatalf("send request %d: %v", i, err)
		}
		chans[i] = ch
	}
	for i, ch := range chans {
		k := keys[i%len(keys)]
		v, err := p.await(ch, 60*time.Second, k.key)
		if err != nil {
			t.Fatalf("request %d (%s%q): %v", i, k.key, k.params, err)
		}
		if k.key == "tcp.status.get" {
			var m map[string]int
			if err := json.Unmarshal([]byte(v), &m); err != nil || len(m) != 12 {
				t.Fatalf("request %d: %s = %q", i, k.key, v)
			}
		} else {
			atoi(t, k.key, v)
		}
	}
	t.Logf("%d requests in flight answered in %v", n, time.Since(start).Round(time.Millisecond))
}

// TestPluginIgnoresSignals: SIGTERM and SIGINT (systemd stopping the
// service's control group, Ctrl-C in a terminal) must not end the plugin,
// only the agent may (Terminate or EOF), or agent 2 6.0 shuts down and 7.0
// panics.
func TestPluginIgnoresSignals(t *testing.T) {
	p := startPlugin(t, pluginOpts{})
	p.configure(nil)
	if err := p.probe(t); err != nil {
		t.Fatal(err)
	}
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT, syscall.SIGTERM} {
		if err := p.cmd.Process.Signal(sig); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(500 * time.Millisecond)
	if !p.alive() {
		t.Fatalf("plugin exited on a signal: %v", p.state)
	}
	if err := p.probe(t); err != nil {
		t.Fatal(err)
	}
}

// TestPluginRequestTimeout: a request is answered with the timeout error at
// the time limit the request carries (agent 7.0), which wins over the
// plugin's Timeout option; without one, the Timeout option applies. The
// socket-table read hangs (a FIFO that delivers nothing); afterwards the
// plugin serves again once the table arrives.
func TestPluginRequestTimeout(t *testing.T) {
	root, feed := fifoProcRoot(t)
	p := startPlugin(t, pluginOpts{})
	p.configure(map[string]string{"ProcRoot": root, "Source": "proc", "Timeout": "4", "CacheTTL": "0"})

	check := func(name string, timeout int, want time.Duration) {
		t.Helper()
		start := time.Now()
		_, ch, err := p.export("tcp.status", []string{"listen"}, timeout)
		if err != nil {
			t.Fatal(err)
		}
		_, err = p.await(ch, want+5*time.Second, "tcp.status")
		took := time.Since(start)
		if !isItemError(err, timeoutText) {
			t.Fatalf("%s: got %v after %v, want %q", name, err, took, timeoutText)
		}
		if took < want-300*time.Millisecond || took > want+time.Second {
			t.Errorf("%s: timeout error after %v, want about %v", name, took, want)
		}
		t.Logf("%s: %q after %v", name, err, took.Round(time.Millisecond))
	}
	check("request timeout 2 s (7.0)", 2, 2*time.Second)
	check("no request timeout, option Timeout=4 (6.0)", 0, 4*time.Second)

	// Other keys are served meanwhile.
	if err := p.probe(t); err != nil {
		t.Fatal(err)
	}
	// The table arrives: the hung read completes and answers the request
	// waiting for it.
	_, ch, err := p.export("tcp.status", []string{"listen"}, 10)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	feed(procTCPHeader + procTCPListen(0, 8080) + procTCPListen(1, 8081))
	v, err := p.await(ch, 15*time.Second, "tcp.status")
	if err != nil || v != "2" {
		t.Fatalf("after the table arrived: tcp.status[listen] = %q, %v; want 2", v, err)
	}
}
