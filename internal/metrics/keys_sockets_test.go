package metrics

import (
	"context"
	"encoding/json"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"zabbix-agent2-plugin-tcpstatus/internal/sockets"
	"zabbix-agent2-plugin-tcpstatus/testkit/testnet"
)

// socketsGet is the decoded answer of tcp.sockets.get, numbers kept as
// text so that formatting differences show.
type socketsGet struct {
	States map[string]json.Number   `json:"states"`
	Ports  []map[string]json.Number `json:"ports"`
	raw    []map[string]any
}

func decodeSocketsGet(t testing.TB, v string) socketsGet {
	t.Helper()
	var raw struct {
		States map[string]json.Number `json:"states"`
		Ports  []map[string]any       `json:"ports"`
	}
	dec := json.NewDecoder(strings.NewReader(v))
	dec.UseNumber()
	if err := dec.Decode(&raw); err != nil {
		t.Fatalf("tcp.sockets.get: %v\n%.500s", err, v)
	}
	g := socketsGet{States: raw.States, raw: raw.Ports}
	for _, p := range raw.Ports {
		m := map[string]json.Number{}
		for k, x := range p {
			if n, ok := x.(json.Number); ok {
				m[k] = n
			}
		}
		g.Ports = append(g.Ports, m)
	}
	return g
}

// decodeNumbers decodes a JSON object of numbers, kept as text.
func decodeNumbers(t testing.TB, v string) map[string]json.Number {
	t.Helper()
	var m map[string]json.Number
	dec := json.NewDecoder(strings.NewReader(v))
	dec.UseNumber()
	if err := dec.Decode(&m); err != nil {
		t.Fatalf("%v: %s", err, v)
	}
	return m
}

// checkSocketsGet answers tcp.sockets.get with export and checks it against
// the single keys of the same exporter: states equal tcp.status.get, the
// ports are those tcp.port.discovery lists, in order, each with the
// address, family and loopback of its discovery row and every other field
// equal to tcp.port.get[<port>]. The table must not change meanwhile. It
// returns the answer.
func checkSocketsGet(t testing.TB, export func(key string, params ...string) string) socketsGet {
	t.Helper()
	g := decodeSocketsGet(t, export("tcp.sockets.get"))
	if want := decodeNumbers(t, export("tcp.status.get")); !reflect.DeepEqual(g.States, want) {
		t.Errorf("states %v\ntcp.status.get %v", g.States, want)
	}
	rows := decodeLLD(t, export("tcp.port.discovery"))
	if len(rows) != len(g.Ports) {
		t.Fatalf("tcp.sockets.get lists %d ports, tcp.port.discovery %d: %v", len(g.Ports), len(rows), rowPorts(rows))
	}
	for i, r := range rows {
		p, raw := g.Ports[i], g.raw[i]
		if p["port"].String() != r["{#PORT}"] {
			t.Errorf("port %d: %v, discovery has %s", i, p["port"], r["{#PORT}"])
			continue
		}
		if raw["address"] != r["{#ADDRESS}"] || raw["family"] != r["{#FAMILY}"] || p["loopback"].String() != r["{#LOOPBACK}"] {
			t.Errorf("port %s: address %v family %v loopback %v; discovery %v", r["{#PORT}"], raw["address"], raw["family"], p["loopback"], r)
		}
		want := decodeNumbers(t, export("tcp.port.get", r["{#PORT}"]))
		got := copyNumbers(p)
		delete(got, "loopback")
		if !reflect.DeepEqual(got, want) {
			t.Errorf("port %s:\n got %v\nwant %v (tcp.port.get)", r["{#PORT}"], got, want)
		}
		if p["listening"] != "1" {
			t.Errorf("port %s: listening %v", r["{#PORT}"], p["listening"])
		}
	}
	return g
}

func copyNumbers(m map[string]json.Number) map[string]json.Number {
	c := make(map[string]json.Number, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}

func TestTCPSocketsGet(t *testing.T) {
	e := portExporter(t, portTables(), t.TempDir())
	export := func(key string, params ...string) string {
		v, err := e.Export(context.Background(), key, params)
		if err != nil {
			t.Fatalf("%s%v: %v", key, params, err)
		}
		return v
	}
	g := checkSocketsGet(t, export)
	var ports []string
	for _, p := range g.Ports {
		ports = append(ports, p["port"].String())
	}
	if want := []string{"22", "80", "5432", "6379", "8080", "9100"}; !slices.Equal(ports, want) {
		t.Errorf("ports %v, want %v", ports, want)
	}
	// Port 80: one listener with 3 of 4 queued, 2 ESTABLISHED... as the
	// table has them.
	p80 := g.Ports[1]
	for k, want := range map[string]string{"listeners": "1", "accept_queue": "3", "backlog": "4", "accept_queue_pused": "75.00",
		"established": "1", "time_wait": "2", "close_wait": "1", "syn_recv": "1", "listen": "1", "total": "6", "loopback": "0"} {
		if p80[k].String() != want {
			t.Errorf("port 80: %s = %v, want %s", k, p80[k], want)
		}
	}
	if _, err := e.Export(context.Background(), "tcp.sockets.get", []string{"22"}); err == nil || err.Error() != "Too many parameters." {
		t.Errorf("tcp.sockets.get[22]: %v", err)
	}
	if _, err := e.Export(context.Background(), "tcp.sockets.get", []string{""}); err != nil {
		t.Errorf("tcp.sockets.get[]: %v", err)
	}
}

// TestTCPSocketsGetIsOneRead pins the cost: one listener walk and one walk
// of the whole table per call, whatever the number of ports, and
// tcp.status.get and per-port keys within the TTL ride on the same read.
func TestTCPSocketsGetIsOneRead(t *testing.T) {
	src := &recordingSource{fakeSource: fakeSource{socks: portTables().tcp.socks}}
	e := testExporter(t, src, time.Second)
	ctx := context.Background()
	if _, err := e.Export(ctx, "tcp.sockets.get", nil); err != nil {
		t.Fatal(err)
	}
	want := []sockets.Query{
		{Proto: sockets.TCP, States: sockets.MaskOf(sockets.Listen), Fields: sockets.FieldLocalAddr | sockets.FieldQueues},
		{Proto: sockets.TCP, Fields: sockets.FieldCgroup | sockets.FieldLocalAddr | sockets.FieldRemote},
	}
	if !reflect.DeepEqual(src.queries, want) {
		t.Errorf("queries %+v, want %+v", src.queries, want)
	}
	src.queries = nil
	for _, k := range []string{"tcp.status.get", "tcp.sockets.get", "tcp.ephemeral.get"} {
		if _, err := e.Export(ctx, k, nil); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := e.Export(ctx, "tcp.status", []string{"estab", "80"}); err != nil {
		t.Fatal(err)
	}
	if len(src.queries) != 0 {
		t.Errorf("within the TTL: queries %+v, want none", src.queries)
	}
}

// TestTCPSocketsGetPortLimit checks that the lowest maxPortSlots listening
// ports are listed, with their counts.
func TestTCPSocketsGetPortLimit(t *testing.T) {
	var socks []sockets.Socket
	for p := 1; p <= maxPortSlots+10; p++ {
		socks = append(socks, sock(sockets.Listen, "127.0.0.1:"+strconv.Itoa(65536-p), ""))
	}
	first := 65536 - maxPortSlots - 10
	socks = append(socks, sock(sockets.Established, "127.0.0.1:"+strconv.Itoa(first), "127.0.0.1:1000"))
	e := testExporter(t, &fakeSource{socks: socks}, 0)
	v, err := e.Export(context.Background(), "tcp.sockets.get", nil)
	if err != nil {
		t.Fatal(err)
	}
	g := decodeSocketsGet(t, v)
	if len(g.Ports) != maxPortSlots || g.Ports[0]["port"] != json.Number(strconv.Itoa(first)) ||
		g.Ports[0]["established"] != "1" || g.Ports[0]["total"] != "2" {
		t.Fatalf("%d ports, first %v", len(g.Ports), g.Ports[0])
	}
	if last := g.Ports[maxPortSlots-1]; last["port"] != "65525" || last["total"] != "1" {
		t.Errorf("last port %v", last)
	}
}

// nsSource walks src from a thread inside ns.
type nsSource struct {
	ns  *testnet.NS
	src sockets.Source
}

func (n nsSource) Name() string { return n.src.Name() }

func (n nsSource) Walk(ctx context.Context, q sockets.Query, visit func(*sockets.Socket)) error {
	return n.ns.Do(func() error { return n.src.Walk(ctx, q, visit) })
}

// TestIntegrationTCPSocketsGetNetns holds sockets in several states on
// IPv4 and IPv6 ports of a private namespace and checks tcp.sockets.get,
// through netlink and through the /proc tables, against tcp.port.get,
// discovery and tcp.status.get, and every port's states against what the
// builders made (which ss counted) and ss's count of the port.
func TestIntegrationTCPSocketsGetNetns(t *testing.T) {
	ns := testnet.New(t)
	var held []testnet.Held
	for _, b := range []func() (testnet.Held, error){
		func() (testnet.Held, error) { return ns.Established("127.0.0.1", 7) },
		func() (testnet.Held, error) { return ns.Established("::1", 3) },
		func() (testnet.Held, error) { return ns.Established("::ffff:127.0.0.1", 2) },
		func() (testnet.Held, error) { return ns.CloseWait("127.0.0.1", 4) },
		func() (testnet.Held, error) { return ns.Pending("127.0.0.1", 8, 5) },
		func() (testnet.Held, error) { return ns.Pending("::1", 16, 3) },
		func() (testnet.Held, error) { return ns.Listen("::1", 3) },
		func() (testnet.Held, error) { return ns.LastAck("127.0.0.1", 6) },
		func() (testnet.Held, error) { return ns.SynRecv("::1", 4) },
	} {
		h, err := b()
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, h)
	}
	l := newNSListeners(t, ns)
	l.open(false, "127.0.0.1:30000", "[::1]:30000", "[::]:30001")

	cfg := DefaultConfig()
	cfg.CacheTTL = 0
	cfg.Timeout = 30 * time.Second
	// The snapshot cache reads on its own goroutine: walk from a thread in
	// the namespace, which is what netlink sees.
	viaNetlink, err := newExporter(cfg, NopLogger{}, nsSource{ns, sockets.NewNetlink()})
	if err != nil {
		t.Fatal(err)
	}
	viaProc, err := newExporter(cfg, NopLogger{}, sockets.NewProc(ns.NetDir()))
	if err != nil {
		t.Fatal(err)
	}
	answers := map[string]socketsGet{}
	for name, e := range map[string]*Exporter{"netlink": viaNetlink, "proc": viaProc} {
		t.Run(name, func(t *testing.T) {
			export := func(key string, params ...string) string {
				var v string
				err := ns.Do(func() error {
					var err error
					v, err = e.Export(context.Background(), key, params)
					return err
				})
				if err != nil {
					t.Fatalf("%s%v: %v", key, params, err)
				}
				return v
			}
			g := checkSocketsGet(t, export)
			answers[name] = g
			byPort := map[string]map[string]json.Number{}
			for _, p := range g.Ports {
				byPort[p["port"].String()] = p
			}
			for _, h := range held {
				p := byPort[strconv.Itoa(int(h.Port))]
				if p == nil {
					t.Errorf("%s port %d: not listed", h.Kind, h.Port)
					continue
				}
				for _, s := range sockets.States() {
					if p[s.String()].String() != strconv.FormatUint(h.Local[s], 10) {
						t.Errorf("%s port %d: %s = %v, the builder holds %d", h.Kind, h.Port, s, p[s.String()], h.Local[s])
					}
				}
			}
			for port, p := range byPort {
				n, err := ns.SSCount("-tan", "sport", "=", ":"+port)
				if err != nil {
					t.Fatal(err)
				}
				if p["total"].String() != strconv.Itoa(n) {
					t.Errorf("port %s: total %v, ss counts %d", port, p["total"], n)
				}
			}
			if p := byPort["30000"]; p == nil || g.raw[slices.IndexFunc(g.Ports, func(m map[string]json.Number) bool { return m["port"] == "30000" })]["family"] != "4,6" {
				t.Errorf("port 30000: %v", p)
			}
		})
	}
	// The two sources agree but for what /proc cannot show: the backlog.
	nl, pr := answers["netlink"], answers["proc"]
	if !reflect.DeepEqual(nl.States, pr.States) || len(nl.Ports) != len(pr.Ports) {
		t.Fatalf("netlink %v\nproc %v", nl, pr)
	}
	for i := range nl.Ports {
		a, b := copyNumbers(nl.Ports[i]), copyNumbers(pr.Ports[i])
		for _, m := range []map[string]json.Number{a, b} {
			delete(m, "backlog")
			delete(m, "accept_queue_pused")
		}
		if !reflect.DeepEqual(a, b) {
			t.Errorf("port %v: netlink %v, proc %v", a["port"], a, b)
		}
	}
}

// TestTCPSocketsGetConcurrent asks tcp.sockets.get and tcp.port.get from
// many goroutines at once: one read, the same answer for all (run with
// -race: the shared read is only read).
func TestTCPSocketsGetConcurrent(t *testing.T) {
	src := &fakeSource{socks: portTables().tcp.socks, delay: 20 * time.Millisecond}
	e := testExporter(t, src, time.Second)
	const n = 16
	out := make([]string, n)
	errs := make([]error, n)
	done := make(chan int)
	for i := range n {
		go func() {
			if i%4 == 3 {
				_, errs[i] = e.Export(context.Background(), "tcp.port.get", []string{"80"})
			} else {
				out[i], errs[i] = e.Export(context.Background(), "tcp.sockets.get", nil)
			}
			done <- i
		}()
	}
	for range n {
		<-done
	}
	for i := range n {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		if i%4 != 3 && out[i] != out[0] {
			t.Errorf("answer %d differs:\n%s\n%s", i, out[i], out[0])
		}
	}
	// One whole-table read (2 walks), tcp.port.get's listener walks, and
	// at most one port read they share if they came before the whole-table
	// read was done.
	if w := src.walks.Load(); w < 2+n/4 || w > 3+n/4 {
		t.Errorf("%d walks, want %d or %d", w, 2+n/4, 3+n/4)
	}
}
