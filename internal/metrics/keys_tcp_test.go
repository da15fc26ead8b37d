package metrics

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"zabbix-agent2-plugin-tcpstatus/internal/sockets"
	"zabbix-agent2-plugin-tcpstatus/internal/zbx"
)

func TestTCPStatus(t *testing.T) {
	src := &fakeSource{socks: mixedTable()}
	e := testExporter(t, src, 0)
	cases := []struct {
		name   string
		params []string
		want   string
	}{
		{"+seed timewait", []string{"timewait"}, "3"},
		{"+seed estab", []string{"estab"}, "4"},
		{"+kernel name", []string{"time_wait"}, "3"},
		{"+dash upper", []string{"TIME-WAIT"}, "3"},
		{"+netstat SYN_RECV", []string{"SYN_RECV"}, "1"},
		{"+synsent is not synrecv", []string{"synsent"}, "1"},
		{"+listen", []string{"listen"}, "3"},
		{"+closewait", []string{"closewait"}, "1"},
		{"+finwait1", []string{"finwait1"}, "1"},
		{"+finwait2", []string{"finwait2"}, "1"},
		{"+lastack", []string{"lastack"}, "1"},
		{"+closing", []string{"closing"}, "1"},
		{"+closed", []string{"closed"}, "0"},
		{"+all", []string{"all"}, "17"},
		{"+no params is all", nil, "17"},
		{"+empty state is all", []string{""}, "17"},
		{"+port 80 not 8080", []string{"estab", "80"}, "3"},
		{"+port 8080", []string{"estab", "8080"}, "1"},
		{"+port with spaces", []string{"estab", " 80 "}, "3"},
		{"+family 4", []string{"estab", "", "4"}, "3"},
		{"+family 6", []string{"estab", "", "6"}, "1"},
		{"+family ipv6 port", []string{"timewait", "8080", "ipv6"}, "1"},
		{"+listen all ports v6", []string{"listen", "", "6"}, "1"},
		{"+unused port", []string{"all", "443"}, "0"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := e.Export(context.Background(), "tcp.status", c.params)
			if err != nil || got != c.want {
				t.Fatalf("tcp.status%q = %q, %v; want %q", c.params, got, err, c.want)
			}
		})
	}
}

func TestTCPStatusErrors(t *testing.T) {
	e := testExporter(t, &fakeSource{socks: mixedTable()}, 0)
	cases := []struct {
		name   string
		key    string
		params []string
		want   string // prefix of the error text
	}{
		{"-unknown state", "tcp.status", []string{"bogus"}, `Invalid first parameter: unknown state "bogus"; expected established (estab), ` +
			`syn_sent (synsent), syn_recv (synrecv), fin_wait1 (finwait1), fin_wait2 (finwait2), time_wait (timewait), ` +
			`close (closed), close_wait (closewait), last_ack (lastack), listen, closing or all.`},
		{"-port not a number", "tcp.status", []string{"estab", "http"}, `Invalid second parameter: port must be a number from 1 to 65535, got "http".`},
		{"-port zero", "tcp.status", []string{"estab", "0"}, "Invalid second parameter: port must be from 1 to 65535, got 0."},
		{"-port too big", "tcp.status", []string{"estab", "70000"}, "Invalid second parameter: port must be from 1 to 65535, got 70000."},
		{"-port negative", "tcp.status", []string{"estab", "-1"}, `Invalid second parameter: port must be a number from 1 to 65535, got "-1".`},
		{"-family", "tcp.status", []string{"estab", "", "5"}, `Invalid third parameter: unknown family "5"; expected 4, 6 or empty for both.`},
		{"-too many", "tcp.status", []string{"estab", "", "", ""}, "Too many parameters."},
		{"-get family", "tcp.status.get", []string{"", "x"}, `Invalid second parameter: unknown family "x"`},
		{"-get too many", "tcp.status.get", []string{"", "", ""}, "Too many parameters."},
		{"-unknown key", "tcp.nope", nil, "Unsupported metric."},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := e.Export(context.Background(), c.key, c.params)
			if err == nil {
				t.Fatalf("%s%q = %q, want error %q", c.key, c.params, got, c.want)
			}
			if !strings.HasPrefix(err.Error(), c.want) || !strings.HasSuffix(err.Error(), ".") {
				t.Fatalf("%s%q error = %q, want prefix %q and a final period", c.key, c.params, err, c.want)
			}
		})
	}
}

func TestTCPStatusGet(t *testing.T) {
	e := testExporter(t, &fakeSource{socks: mixedTable()}, 0)
	got, err := e.Export(context.Background(), "tcp.status.get", nil)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]uint64
	if err := json.Unmarshal([]byte(got), &m); err != nil {
		t.Fatalf("not JSON: %q: %v", got, err)
	}
	want := map[string]uint64{
		"established": 4, "syn_sent": 1, "syn_recv": 1, "fin_wait1": 1, "fin_wait2": 1, "time_wait": 3,
		"close": 0, "close_wait": 1, "last_ack": 1, "listen": 3, "closing": 1, "total": 17,
	}
	if len(m) != len(want) {
		t.Fatalf("got %d fields, want %d: %s", len(m), len(want), got)
	}
	for k, v := range want {
		if m[k] != v {
			t.Errorf("%s = %d, want %d (%s)", k, m[k], v, got)
		}
	}
	got, err = e.Export(context.Background(), "tcp.status.get", []string{"8080", "4"})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(got, `"established":1,`) || !strings.HasSuffix(got, `"total":3}`) {
		t.Fatalf("tcp.status.get[8080,4] = %s", got)
	}
}

func TestSourceFailureIsItemError(t *testing.T) {
	cases := []struct {
		name string
		src  *fakeSource
		want string
	}{
		{"-refused", &fakeSource{err: sockets.ErrUnsupported}, "Cannot obtain socket table. Socket source unsupported."},
		{"-panic in source", &fakeSource{panic: true}, "Internal error while gathering data."},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := testExporter(t, c.src, time.Second)
			_, err := e.Export(context.Background(), "tcp.status", []string{"estab"})
			if err == nil || err.Error() != c.want {
				t.Fatalf("error = %v, want %q", err, c.want)
			}
			var ie *ItemError
			if !errors.As(err, &ie) {
				t.Fatalf("error %T is not an ItemError", err)
			}
		})
	}
}

func TestTimeoutIsItemError(t *testing.T) {
	e := testExporter(t, &fakeSource{socks: mixedTable(), delay: time.Second}, 0)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	_, err := e.Export(ctx, "tcp.status", []string{"estab"})
	if err == nil || err.Error() != "Timeout occurred while gathering data." {
		t.Fatalf("error = %v", err)
	}
}

func TestMetricTable(t *testing.T) {
	e := testExporter(t, &fakeSource{}, 0)
	seen := map[string]bool{}
	var reg zbx.Registration
	for _, m := range e.Metrics() {
		if err := checkMetric(&reg, m); err != nil {
			t.Error(err)
		}
		if seen[m.Key] {
			t.Errorf("duplicate key %s", m.Key)
		}
		seen[m.Key] = true
		// Agent built-ins must never be shadowed: registering one makes
		// agent 2 6.0 panic.
		for _, builtin := range []string{"net.tcp.", "net.udp.", "vfs.", "system.", "agent.", "proc.", "kernel."} {
			if strings.HasPrefix(m.Key, builtin) {
				t.Errorf("key %s is in the agent's own namespace %s", m.Key, builtin)
			}
		}
	}
	for _, k := range []string{"tcp.status", "tcp.status.get"} {
		if !seen[k] {
			t.Errorf("key %s not declared", k)
		}
	}
	bad := []Metric{
		{Key: "tcp.x[", Description: "X.", Handler: e.tcpStatus},
		{Key: "tcp.x", Description: "lower case.", Handler: e.tcpStatus},
		{Key: "tcp.x", Description: "No period", Handler: e.tcpStatus},
		{Key: "tcp.x", Description: "No handler."},
	}
	for _, m := range bad {
		if checkMetric(new(zbx.Registration), m) == nil {
			t.Errorf("checkMetric(%+v) accepted a bad declaration", m)
		}
	}
}

func TestParseState(t *testing.T) {
	for name, want := range map[string]sockets.State{
		"estab": sockets.Established, "ESTABLISHED": sockets.Established, "listen": sockets.Listen,
		"timewait": sockets.TimeWait, "time_wait": sockets.TimeWait, "Time-Wait": sockets.TimeWait,
		"synrecv": sockets.SynRecv, "syn_recv": sockets.SynRecv, "SYN-RECV": sockets.SynRecv,
		"synsent": sockets.SynSent, "syn_sent": sockets.SynSent, "finwait1": sockets.FinWait1,
		"fin_wait2": sockets.FinWait2, "closewait": sockets.CloseWait, "close_wait": sockets.CloseWait,
		"lastack": sockets.LastAck, "LAST_ACK": sockets.LastAck, "closing": sockets.Closing, "listening": sockets.Listen,
		"closed": sockets.Close, "close": sockets.Close,
	} {
		if got, ok := sockets.ParseState(name); !ok || got != want {
			t.Errorf("ParseState(%q) = %v, %v; want %v", name, got, ok, want)
		}
	}
	for _, bad := range []string{"", "est", "time wait", "syn", "12", "all"} {
		if s, ok := sockets.ParseState(bad); ok {
			t.Errorf("ParseState(%q) = %v, want rejection", bad, s)
		}
	}
}

func TestLongParameterIsClippedInErrors(t *testing.T) {
	e := testExporter(t, &fakeSource{}, 0)
	long := strings.Repeat("é", 1<<20)
	for _, params := range [][]string{{long}, {"estab", long}, {"estab", "", long}} {
		_, err := e.Export(context.Background(), "tcp.status", params)
		if err == nil || len(err.Error()) > 1024 || !strings.Contains(err.Error(), `..."`) {
			t.Fatalf("error for a 2 MB parameter: %d bytes: %.200q", len(err.Error()), err)
		}
	}
}
