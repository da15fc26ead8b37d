package agentproto

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"zabbix-agent2-plugin-tcpstatus/internal/zbx"
)

// protoDocTree is the configuration tree of section 6 of the protocol notes
// (agent 6.0.14 and 7.0.9 send this shape), for the lines
//
//	Plugins.ProtoTest.System.Path=/usr/libexec/zabbix/prototest
//	Plugins.ProtoTest.Foo=bar
//	Plugins.ProtoTest.Sessions.S1.Uri=tcp://127.0.0.1:1
const protoDocTree = `{"Name":"ProtoTest","Line":1,"Nodes":[
  {"Name":"System","Line":1,"Nodes":[{"Name":"Path","Line":1,"Nodes":[{"Value":"L3Vzci9saWJleGVjL3phYmJpeC9wcm90b3Rlc3Q=","Line":1}]}]},
  {"Name":"Foo","Line":2,"Nodes":[{"Value":"YmFy","Line":2}]},
  {"Name":"Sessions","Line":3,"Nodes":[{"Name":"S1","Line":3,"Nodes":[{"Name":"Uri","Line":3,"Nodes":[{"Value":"dGNwOi8vMTI3LjAuMC4xOjE=","Line":3}]}]}]}]}`

var protoDocOptions = map[string]string{"Foo": "bar", "Sessions.S1.Uri": "tcp://127.0.0.1:1"}

// Registration process, agent 6.0.14 order: Register, Validate, Terminate
// with id 0.
func TestSessionRegistration60(t *testing.T) {
	h := &testHandler{}
	a := startAgent(t, &Server{Name: "TCPStatus", Handler: h})
	a.send(`{"id":1,"type":2,"version":"6.0.13"}`)
	golden(t, "register_response.bin", a.next())
	a.send(`{"id":2,"type":9,"private_options":` + protoDocTree + `}`)
	golden(t, "validate_response_ok.bin", a.next())
	a.send(`{"id":0,"type":5}`)
	a.conn.Close() // agent 6.0 hangs up right after Terminate
	if err := a.wait(); err != nil {
		t.Fatalf("Serve after Terminate: %v", err)
	}
	if len(h.validated) != 1 || !maps.Equal(h.validated[0], protoDocOptions) {
		t.Errorf("Validate got %v, want one call with %v", h.validated, protoDocOptions)
	}
	if len(h.configured) != 0 {
		t.Errorf("Configure called in the registration process: %v", h.configured)
	}
	if !hasLog(a.logged(), SeverityDebug, `agent protocol version "6.0.13"`) {
		t.Errorf("agent version not logged at debug: %+v", a.logged())
	}
}

// Registration with agent 7.0's version string and Terminate id; any version
// is accepted.
func TestSessionRegistration70(t *testing.T) {
	for _, version := range []string{"6.4.0", "1.0", "99.1", ""} {
		t.Run(version, func(t *testing.T) {
			h := &testHandler{validate: func(opts map[string]string) error {
				return errors.New("Unknown option Plugins.TCPStatus.Foo.")
			}}
			a := startAgent(t, &Server{Name: "TCPStatus", Handler: h})
			a.send(`{"id":1,"type":2,"version":"` + version + `"}`)
			r, ok := a.nextMsg().(*RegisterResponse)
			if !ok || r.ID != 1 || r.Name != "TCPStatus" || r.Error != "" || r.Interfaces != 7 || len(r.Metrics) != 4 {
				t.Fatalf("register response %+v", r)
			}
			a.send(`{"id":2,"type":9,"private_options":` + protoDocTree + `}`)
			f := a.next()
			if version == "6.4.0" {
				golden(t, "validate_response_error.bin", f)
			}
			a.send(`{"id":3,"type":5}`)
			if err := a.wait(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// Operational process, agent 6.0.14 order: Configure (id 1), Start (id 2),
// Exports without timeout, Terminate with id 0.
func TestSessionOperational60(t *testing.T) {
	h := &testHandler{export: func(ctx context.Context, key string, p []string) (string, error) {
		if key == "tcp.status" && len(p) > 0 && p[0] == "bogus" {
			return "", errors.New(`Invalid first parameter: unknown state "bogus".`)
		}
		return "17", nil
	}}
	a := startAgent(t, &Server{Name: "TCPStatus", Handler: h})
	a.send(`{"id":1,"type":8,"global_options":{"Timeout":3,"SourceIP":""},"private_options":` + protoDocTree + `}`)
	a.send(`{"id":2,"type":4}`)
	a.noFrame(50 * time.Millisecond) // Configure and Start get no reply
	a.send(`{"id":3,"type":6,"key":"tcp.status","parameters":["timewait"]}`)
	golden(t, "export_value.bin", a.next())
	a.send(`{"id":4,"type":6,"key":"tcp.status","parameters":["bogus"]}`)
	golden(t, "export_error.bin", a.next())
	a.send(`{"id":5,"type":6,"key":"tcp.status.get"}`)
	if r := a.nextExport(); r.ID != 5 || r.Value == nil || *r.Value != "17" {
		t.Errorf("export 5: %+v", r)
	}
	a.send(`{"id":0,"type":5}`)
	a.conn.Close() // agent 6.0 hangs up right after Terminate
	if err := a.wait(); err != nil {
		t.Fatal(err)
	}
	want := GlobalOptions{Timeout: 3}
	if len(h.configured) != 1 || h.configured[0] != want || !maps.Equal(h.confOpts[0], protoDocOptions) {
		t.Errorf("Configure got %v %v, want %v %v", h.configured, h.confOpts, want, protoDocOptions)
	}
	if len(h.validated) != 0 {
		t.Errorf("Validate called in the operational process")
	}
}

// Operational process, agent 7.0 style: every Export carries "timeout",
// Terminate has the next id; parameters arrive as sent.
func TestSessionOperational70(t *testing.T) {
	var deadlines []time.Duration
	var mu sync.Mutex
	h := &testHandler{export: func(ctx context.Context, key string, p []string) (string, error) {
		d, _ := ctx.Deadline()
		mu.Lock()
		deadlines = append(deadlines, time.Until(d))
		mu.Unlock()
		return fmt.Sprintf("%s %q %v", key, p, p == nil), nil
	}}
	a := startAgent(t, &Server{Name: "TCPStatus", Handler: h})
	a.send(`{"id":1,"type":8,"global_options":{"Timeout":3,"SourceIP":"127.0.0.1"},"private_options":` + protoDocTree + `}`)
	a.send(`{"id":2,"type":4}`)
	cases := []struct{ params, want string }{
		{``, `tcp.status [] true`},
		{`,"parameters":[""]`, `tcp.status [""] false`},
		{`,"parameters":["a","b c","","x,y"]`, `tcp.status ["a" "b c" "" "x,y"] false`},
		{`,"parameters":["a\"b","100%"]`, `tcp.status ["a\"b" "100%"] false`},
	}
	for i, c := range cases {
		a.send(fmt.Sprintf(`{"id":%d,"type":6,"key":"tcp.status"%s,"timeout":60}`, i+3, c.params))
		r := a.nextExport()
		if r.ID != uint32(i+3) || r.Error != "" || r.Value == nil || *r.Value != c.want {
			t.Errorf("export %d: got %+v (value %q), want %q", i+3, r, deref(r.Value), c.want)
		}
	}
	a.send(`{"id":7,"type":5}`)
	if err := a.wait(); err != nil {
		t.Fatal(err)
	}
	for _, d := range deadlines {
		if d < 59*time.Second || d > 60*time.Second {
			t.Errorf("handler deadline %v ahead, want the request's 60 s", d)
		}
	}
	if h.configured[0].SourceIP != "127.0.0.1" {
		t.Errorf("SourceIP %q", h.configured[0].SourceIP)
	}
}

func deref(p *string) string {
	if p == nil {
		return "<nil>"
	}
	return *p
}

// After a Terminate with id 0 (agent 6.0), Serve waits for the agent to hang
// up, at most terminateGrace; after one with another id (agent 7.0, which
// waits for the plugin to exit) it returns at once.
func TestTerminateWaitsForHangUp(t *testing.T) {
	cases := []struct {
		name     string
		req      string
		closeAt  time.Duration // 0: never
		min, max time.Duration
	}{
		{"+6.0 hangs up after 150ms", `{"id":0,"type":5}`, 150 * time.Millisecond, 150 * time.Millisecond, 450 * time.Millisecond},
		{"+6.0 style, agent never hangs up", `{"id":0,"type":5}`, 0, terminateGrace, terminateGrace + 400*time.Millisecond},
		{"+7.0 numbered Terminate", `{"id":4,"type":5}`, 0, 0, 100 * time.Millisecond},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a := startAgent(t, &Server{Name: "X", Handler: &testHandler{}})
			start := time.Now()
			a.send(c.req)
			if c.closeAt > 0 {
				time.AfterFunc(c.closeAt, func() { a.conn.Close() })
			}
			if err := a.wait(); err != nil {
				t.Fatal(err)
			}
			if took := time.Since(start); took < c.min || took > c.max {
				t.Errorf("Serve returned after %v, want %v to %v", took, c.min, c.max)
			}
		})
	}
}

// The agent closing the connection ends Serve without error, in the middle of
// a session too.
func TestSessionEOF(t *testing.T) {
	a := startAgent(t, &Server{Name: "TCPStatus", Handler: &testHandler{}})
	a.send(`{"id":1,"type":2,"version":"6.0.13"}`)
	a.next()
	a.conn.Close()
	if err := a.wait(); err != nil {
		t.Fatalf("Serve after EOF: %v", err)
	}
}

// Many exports in flight, answered in the reverse order of arrival: every id
// is answered exactly once with its own value.
func TestExportConcurrentOutOfOrder(t *testing.T) {
	const n = 200
	release := make([]chan struct{}, n+1)
	for i := range release {
		release[i] = make(chan struct{})
	}
	var started atomic.Int32
	h := &testHandler{export: func(ctx context.Context, key string, p []string) (string, error) {
		var i int
		fmt.Sscan(p[0], &i)
		started.Add(1)
		<-release[i]
		return "v" + p[0], nil
	}}
	a := startAgent(t, &Server{Name: "TCPStatus", Handler: h})
	for i := 1; i <= n; i++ {
		a.send(fmt.Sprintf(`{"id":%d,"type":6,"key":"k","parameters":["%d"],"timeout":30}`, i+100, i))
	}
	for deadline := time.Now().Add(5 * time.Second); started.Load() < n; {
		if time.Now().After(deadline) {
			t.Fatalf("only %d of %d handlers running at once", started.Load(), n)
		}
		time.Sleep(time.Millisecond)
	}
	seen := map[uint32]bool{}
	for i := n; i >= 1; i-- {
		close(release[i])
		r := a.nextExport()
		if r.ID != uint32(i+100) || deref(r.Value) != fmt.Sprintf("v%d", i) {
			t.Fatalf("released %d, got id %d value %q", i, r.ID, deref(r.Value))
		}
		if seen[r.ID] {
			t.Fatalf("id %d answered twice", r.ID)
		}
		seen[r.ID] = true
	}
	a.noFrame(50 * time.Millisecond)
	if len(seen) != n {
		t.Fatalf("%d ids answered, want %d", len(seen), n)
	}
}

// A handler that keeps running past the time limit: the answer is the
// timeout error, on time; a later result is not sent. The limit comes from
// the request (7.0), else from Configure, else the agent's Timeout.
func TestExportTimeout(t *testing.T) {
	stuck := make(chan struct{})
	t.Cleanup(func() { close(stuck) })
	var ctxDone atomic.Bool
	h := &testHandler{
		configure: func(GlobalOptions, map[string]string) time.Duration { return 300 * time.Millisecond },
		export: func(ctx context.Context, key string, p []string) (string, error) {
			if key == "fast" {
				return "ok", nil
			}
			<-ctx.Done()
			ctxDone.Store(true)
			<-stuck // ignores the context beyond noticing it
			return "late", nil
		},
	}
	a := startAgent(t, &Server{Name: "TCPStatus", Handler: h})
	a.send(`{"id":1,"type":8,"global_options":{"Timeout":3,"SourceIP":""}}`)
	cases := []struct {
		req      string
		min, max time.Duration
	}{
		{`{"id":2,"type":6,"key":"slow"}`, 300*time.Millisecond - answerMargin, 1 * time.Second},
		{`{"id":3,"type":6,"key":"slow","timeout":1}`, 1 * time.Second, 1700 * time.Millisecond},
	}
	for i, c := range cases {
		start := time.Now()
		a.send(c.req)
		r := a.nextExport()
		took := time.Since(start)
		if r.ID != uint32(i+2) || r.Error != TimeoutText || r.Value != nil {
			t.Errorf("%s: got %+v", c.req, r)
		}
		if took < c.min || took > c.max {
			t.Errorf("%s: answered after %v, want %v to %v", c.req, took, c.min, c.max)
		}
		// the loop keeps serving while the handler is stuck
		a.send(fmt.Sprintf(`{"id":%d,"type":6,"key":"fast"}`, 10+i))
		if r := a.nextExport(); r.ID != uint32(10+i) || deref(r.Value) != "ok" {
			t.Errorf("after the timeout: %+v", r)
		}
	}
	if !ctxDone.Load() {
		t.Error("handler context not cancelled at the time limit")
	}
}

// Without Configure the limit is the server default; with Configure that
// returns 0, the agent's global Timeout.
func TestExportTimeoutDefaults(t *testing.T) {
	block := func(ctx context.Context, key string, p []string) (string, error) {
		d, _ := ctx.Deadline()
		return time.Until(d).Round(100 * time.Millisecond).String(), nil
	}
	a := startAgent(t, &Server{Name: "X", Handler: &testHandler{export: block}, DefaultTimeout: 700 * time.Millisecond})
	a.send(`{"id":1,"type":6,"key":"k"}`)
	// answered answerMargin before the agent's own limit
	if r := a.nextExport(); deref(r.Value) != "600ms" {
		t.Errorf("no Configure: deadline %s ahead, want 600ms", deref(r.Value))
	}
	a.send(`{"id":2,"type":8,"global_options":{"Timeout":4,"SourceIP":""}}`)
	a.send(`{"id":3,"type":6,"key":"k"}`)
	if r := a.nextExport(); deref(r.Value) != "3.9s" {
		t.Errorf("Configure with Timeout 4: deadline %s ahead, want 3.9s", deref(r.Value))
	}
	// a 7.0 request carries its own limit, used as it is
	a.send(`{"id":4,"type":6,"key":"k","timeout":2}`)
	if r := a.nextExport(); deref(r.Value) != "2s" {
		t.Errorf("request timeout 2: deadline %s ahead, want 2s", deref(r.Value))
	}
}

// Beyond MaxInFlight running handlers, a request is refused at once; a
// handler stuck past its timeout still holds its slot until it returns.
func TestExportMaxInFlight(t *testing.T) {
	release := make(chan struct{})
	var once sync.Once
	t.Cleanup(func() { once.Do(func() { close(release) }) })
	var running atomic.Int32
	h := &testHandler{export: func(ctx context.Context, key string, p []string) (string, error) {
		if key == "block" {
			running.Add(1)
			defer running.Add(-1)
			<-release
		}
		return "ok", nil
	}}
	a := startAgent(t, &Server{Name: "X", Handler: h, MaxInFlight: 2})
	a.send(`{"id":1,"type":6,"key":"block","timeout":1}`)
	a.send(`{"id":2,"type":6,"key":"block","timeout":30}`)
	for running.Load() < 2 {
		time.Sleep(time.Millisecond)
	}
	a.send(`{"id":3,"type":6,"key":"fast"}`)
	if r := a.nextExport(); r.ID != 3 || r.Error != "Too many requests in progress (limit 2)." {
		t.Fatalf("third request: %+v", r)
	}
	if r := a.nextExport(); r.ID != 1 || r.Error != TimeoutText {
		t.Fatalf("first request: %+v", r)
	}
	a.send(`{"id":4,"type":6,"key":"fast"}`)
	if r := a.nextExport(); r.ID != 4 || r.Error == "" {
		t.Fatalf("timed-out handler released its slot early: %+v", r)
	}
	once.Do(func() { close(release) })
	if r := a.nextExport(); r.ID != 2 || deref(r.Value) != "ok" {
		t.Fatalf("second request after release: %+v", r)
	}
	// Slots are freed just after the handlers return: retry until accepted.
	for id := uint32(5); ; id++ {
		a.send(fmt.Sprintf(`{"id":%d,"type":6,"key":"fast"}`, id))
		r := a.nextExport()
		if r.ID != id {
			t.Fatalf("got id %d, want %d (late answer to a timed-out request?)", r.ID, id)
		}
		if deref(r.Value) == "ok" {
			break
		}
		if id > 1000 {
			t.Fatalf("slots never freed: %+v", r)
		}
		time.Sleep(time.Millisecond)
	}
}

// A panicking handler gives an item error and a log line; serving goes on.
// Panics in Metrics, Validate and Configure are caught too.
func TestHandlerPanics(t *testing.T) {
	h := &testHandler{
		export: func(ctx context.Context, key string, p []string) (string, error) {
			if key == "boom" {
				var m map[string]int
				m["x"]++ // nil map write
			}
			return "fine", nil
		},
		validate:  func(map[string]string) error { panic("validate exploded") },
		configure: func(GlobalOptions, map[string]string) time.Duration { panic("configure exploded") },
	}
	a := startAgent(t, &Server{Name: "X", Handler: h})
	a.send(`{"id":1,"type":9,"private_options":` + protoDocTree + `}`)
	if r, ok := a.nextMsg().(*ValidateResponse); !ok || r.Error != "Internal error while validating the configuration: validate exploded." {
		t.Fatalf("validate: %+v", r)
	}
	a.send(`{"id":2,"type":8,"global_options":{"Timeout":3,"SourceIP":""}}`)
	a.send(`{"id":3,"type":6,"key":"boom"}`)
	if r := a.nextExport(); r.ID != 3 || r.Error != InternalText {
		t.Fatalf("boom: %+v", r)
	}
	a.send(`{"id":4,"type":6,"key":"ok"}`)
	if r := a.nextExport(); r.ID != 4 || deref(r.Value) != "fine" {
		t.Fatalf("after panic: %+v", r)
	}
	for _, want := range []string{"panic while answering boom: assignment to entry in nil map", "configure exploded", "validate exploded"} {
		if !hasLog(a.logged(), SeverityError, want) {
			t.Errorf("no error log containing %q", want)
		}
	}

	pm := &panicMetrics{}
	a = startAgent(t, &Server{Name: "X", Handler: pm})
	a.send(`{"id":1,"type":2,"version":"6.0.13"}`)
	if r, ok := a.nextMsg().(*RegisterResponse); !ok || r.Error != "Internal error while listing metrics: no table." || r.Name != "" {
		t.Fatalf("register with panicking Metrics: %+v", r)
	}
}

type panicMetrics struct{ testHandler }

func (*panicMetrics) Metrics() ([]Metric, error) { panic("no table") }

// Metric lists the agent would choke on are refused in the register
// response, never sent.
func TestRegisterRejectsBadMetrics(t *testing.T) {
	cases := []struct {
		name    string
		metrics []Metric
		want    string
	}{
		{"-empty", []Metric{}, "Plugin declares no metrics."},
		{"-key with brackets", []Metric{{"tcp.status[]", "Count."}}, `Metric key "tcp.status[]" may only contain A-Z a-z 0-9 . _ -.`},
		{"-lower-case description", []Metric{{"a", "count."}}, "Description of metric a must start with a capital letter and end with a period."},
		{"-no period", []Metric{{"a", "Count"}}, "Description of metric a must start with a capital letter and end with a period."},
		{"-duplicate", []Metric{{"a", "A."}, {"a", "B."}}, "Metric a declared twice."},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a := startAgent(t, &Server{Name: "X", Handler: &testHandler{metrics: c.metrics}})
			a.send(`{"id":1,"type":2,"version":"6.0.13"}`)
			r, ok := a.nextMsg().(*RegisterResponse)
			if !ok || r.Error != c.want || r.Metrics != nil || r.Name != "" {
				t.Errorf("got %+v, want error %q", r, c.want)
			}
		})
	}
	a := startAgent(t, &Server{Handler: &testHandler{}})
	a.send(`{"id":1,"type":2,"version":"6.0.13"}`)
	if r := a.nextMsg().(*RegisterResponse); r.Error != "Plugin has no name." {
		t.Errorf("no name: %+v", r)
	}
}

// Requests whose fields have the wrong JSON types are answered with an error;
// unknown and unexpected types are logged and ignored; the loop goes on.
func TestBadAndUnknownRequests(t *testing.T) {
	a := startAgent(t, &Server{Name: "X", Handler: &testHandler{}})
	a.send(`{"id":7,"type":6,"key":"k","parameters":5}`)
	if r := a.nextExport(); r.ID != 7 || !strings.HasPrefix(r.Error, "Cannot decode request: json: cannot unmarshal number") || !strings.HasSuffix(r.Error, ".") {
		t.Errorf("bad export: %+v", r)
	}
	a.send(`{"id":8,"type":9,"private_options":"x"}`)
	if r, ok := a.nextMsg().(*ValidateResponse); !ok || r.ID != 8 || !strings.HasPrefix(r.Error, "Cannot decode request: ") {
		t.Errorf("bad validate: %+v", r)
	}
	a.send(`{"id":9,"type":9,"private_options":{"Name":"X","Line":1,"Nodes":[{"Name":"Foo","Line":2,"Nodes":[{"Value":"!!","Line":2}]}]}}`)
	if r, ok := a.nextMsg().(*ValidateResponse); !ok || r.ID != 9 || !strings.HasPrefix(r.Error, "Invalid plugin configuration: config line 2: option Foo: value is not base64") {
		t.Errorf("bad tree: %+v", r)
	}
	a.send(`{"id":10,"type":11}`)
	a.send(`{"id":11,"type":7,"value":"1"}`)
	a.send(`{"id":12,"type":4242,"x":[1,2]}`)
	a.send(`{"id":13,"type":6,"key":"k"}`)
	if r := a.nextExport(); r.ID != 13 || deref(r.Value) != "knull" {
		t.Errorf("after unknown types: %+v", r)
	}
	for _, want := range []string{"unexpected period message with id 10", "unexpected export response message with id 11", "unexpected type 4242 message with id 12"} {
		if !hasLog(a.logged(), SeverityWarning, want) {
			t.Errorf("no warning %q in %+v", want, a.logged())
		}
	}
}

// deepValidate is a Validate request whose tree nests depth nodes.
func deepValidate(id, depth int) string {
	var b strings.Builder
	fmt.Fprintf(&b, `{"id":%d,"type":9,"private_options":`, id)
	for range depth {
		b.WriteString(`{"Name":"a","Line":1,"Nodes":[`)
	}
	b.WriteString(`{"Value":"YQ==","Line":1}`)
	for range depth {
		b.WriteString(`]}`)
	}
	b.WriteString(`}`)
	return b.String()
}

// manyParams is an Export request of n empty parameters.
func manyParams(id, n int) string {
	return fmt.Sprintf(`{"id":%d,"type":6,"key":"k","parameters":[%s]}`, id, strings.TrimSuffix(strings.Repeat(`"",`, n), ","))
}

// TestServeMalformedFrames sends, on one connection, every kind of frame
// the agent could forward or a broken stream could hold: each request whose
// id and type can be read from its body gets exactly one answer (an error
// unless it is valid), the others are logged and dropped, and the serve loop
// goes on to answer the next request. Nothing ends it.
func TestServeMalformedFrames(t *testing.T) {
	over := MaxReadSize + 100
	bigKey := strings.Repeat("k", over)
	cases := []struct {
		name  string
		frame []byte
		id    uint32 // the answer expected, 0 for none
		want  string // text the answer's error holds ("" for a value)
		warn  string // text of the warning logged for a dropped frame
	}{
		{name: "id a string", frame: rawFrame(1, `{"id":"42","type":6,"key":"k"}`), id: 42, want: "Cannot decode request: json: cannot unmarshal string"},
		{name: "id negative", frame: rawFrame(1, `{"id":-44,"type":6,"key":"k"}`), warn: "number -44"},
		{name: "id fractional", frame: rawFrame(1, `{"id":45.5,"type":6,"key":"k"}`), warn: "number 45.5"},
		{name: "id above uint32", frame: rawFrame(1, `{"id":4294967296,"type":6,"key":"k"}`), warn: "number 4294967296"},
		{name: "type a string", frame: rawFrame(1, `{"id":46,"type":"6","key":"k"}`), id: 46, want: "Cannot decode request"},
		{name: "trailing data", frame: rawFrame(1, `{"id":47,"type":6,"key":"k"} {"id":1}`), id: 47, want: "invalid character '{' after top-level value"},
		{name: "nesting beyond the decoder's limit", frame: rawFrame(1, `{"id":48,"type":6,"key":"k","x":`+strings.Repeat("[", 10001)+strings.Repeat("]", 10001)+`}`), id: 48, want: "exceeded max depth"},
		{name: "Validate tree 5000 deep", frame: rawFrame(1, deepValidate(49, 5000)), id: 49, want: "exceeded max depth"},
		{name: "Validate tree 4000 deep", frame: rawFrame(1, deepValidate(50, 4000)), id: 50, want: "is nested more than 16 names deep"},
		{name: "Validate tree 16 deep", frame: rawFrame(1, deepValidate(51, 16)), id: 51},
		{name: "2 million empty parameters", frame: rawFrame(1, manyParams(52, 2_000_000)), id: 52, want: "Too many parameters."},
		{name: "MaxParams parameters", frame: rawFrame(1, manyParams(53, MaxParams)), id: 53},
		{name: "parameters not strings", frame: rawFrame(1, `{"id":54,"type":6,"key":"k","parameters":[1,2]}`), id: 54, want: "cannot unmarshal number"},
		{name: "huge timeout", frame: rawFrame(1, `{"id":55,"type":6,"key":"deadline","timeout":9223372037}`), id: 55},
		{name: "timeout beyond int64", frame: rawFrame(1, `{"id":56,"type":6,"key":"k","timeout":1e30}`), id: 56, want: "cannot unmarshal number 1e30"},
		{name: "oversized Export", frame: rawFrame(1, `{"id":57,"type":6,"key":"`+bigKey+`"}`), id: 57,
			want: fmt.Sprintf("Request too large: %d bytes, the limit is %d.", over+len(`{"id":57,"type":6,"key":""}`), MaxReadSize)},
		{name: "oversized Validate", frame: rawFrame(1, `{"type":9,"id":58,"x":"`+bigKey+`"}`), id: 58, want: "Request too large"},
		{name: "oversized, id after the key", frame: rawFrame(1, `{"type":6,"key":"`+bigKey+`","id":59}`), warn: "discarded a frame of"},
		{name: "oversized Configure", frame: rawFrame(1, `{"id":60,"type":8,"x":"`+bigKey+`"}`), warn: "discarded a frame of"},
		{name: "payload type 2", frame: rawFrame(2, `{"id":61,"type":6,"key":"k"}`), warn: "only json payload type (1) supported, got 2"},
		{name: "id 0", frame: rawFrame(1, `{"id":0,"type":6,"key":5}`), warn: "decode export message 0"},
		{name: "not JSON", frame: rawFrame(1, "not json"), warn: "not a request"},
		{name: "array", frame: rawFrame(1, "[1,2]"), warn: "not a request"},
		{name: "empty body", frame: rawFrame(1, ""), warn: "not a request"},
		{name: "null", frame: rawFrame(1, "null"), warn: "unexpected type 0 message with id 0"},
		{name: "key first, then a bad id", frame: rawFrame(1, `{"key":"k","type":6,"id":"x"}`), warn: "not a request"},
		{name: "closing brace missing", frame: rawFrame(1, `{"type":6,"id":62,"key":"k"`), id: 62, want: "unexpected end of JSON input"},
	}
	h := &testHandler{export: func(ctx context.Context, key string, p []string) (string, error) {
		if key == "deadline" {
			d, _ := ctx.Deadline()
			return time.Until(d).Round(time.Minute).String(), nil
		}
		return fmt.Sprintf("%s %d", key, len(p)), nil
	}}
	a := startAgent(t, &Server{Name: "X", Handler: h})
	go func() { // net.Pipe: a write blocks until the plugin has read it all
		for _, c := range cases {
			if _, err := a.conn.Write(c.frame); err != nil {
				t.Errorf("%s: agent write: %v", c.name, err)
				return
			}
		}
		a.conn.Write(rawFrame(1, `{"id":99,"type":6,"key":"last"}`))
	}()
	got := map[uint32][]Message{}
	for {
		m := a.nextMsg()
		got[m.Header().ID] = append(got[m.Header().ID], m)
		if m.Header().ID == 99 {
			break
		}
	}
	if r, ok := got[99][0].(*ExportResponse); !ok || deref(r.Value) != "last 0" {
		t.Fatalf("request after the malformed frames: %+v", got[99][0])
	}
	delete(got, 99)
	logs := a.logged()
	for _, c := range cases {
		if c.id == 0 {
			if !hasLog(logs, SeverityWarning, c.warn) {
				t.Errorf("%s: no warning with %q", c.name, c.warn)
			}
			continue
		}
		answers := got[c.id]
		delete(got, c.id)
		if len(answers) != 1 {
			t.Errorf("%s: %d answers to request %d, want 1", c.name, len(answers), c.id)
			continue
		}
		var errText string
		var value *string
		switch r := answers[0].(type) {
		case *ExportResponse:
			errText, value = r.Error, r.Value
		case *ValidateResponse:
			errText = r.Error
		default:
			t.Errorf("%s: answered with %T", c.name, r)
			continue
		}
		switch {
		case c.want == "" && errText != "":
			t.Errorf("%s: error %q, want none", c.name, errText)
		case c.want != "" && !strings.Contains(errText, c.want):
			t.Errorf("%s: error %q, want one containing %q", c.name, errText, c.want)
		case errText != "" && (errText != zbx.Sentence(errText) || len(errText) > 300):
			t.Errorf("%s: error %q is not a short Zabbix-style sentence", c.name, errText)
		}
		if c.name == "huge timeout" && deref(value) != "10m0s" {
			t.Errorf("%s: handler deadline %s ahead, want MaxRequestTimeout (10m0s)", c.name, deref(value))
		}
		if c.name == "MaxParams parameters" && deref(value) != fmt.Sprintf("k %d", MaxParams) {
			t.Errorf("%s: value %s", c.name, deref(value))
		}
	}
	for id, ms := range got {
		t.Errorf("unexpected answer to id %d: %+v", id, ms)
	}
}

// Serve ends with the read error only when the connection ends inside a
// frame; a header announcing more than the agent then sends is not an
// error until the stream ends.
func TestServeStreamEndsInsideFrame(t *testing.T) {
	cases := []struct {
		name  string
		frame []byte
	}{
		{"-truncated body", rawFrame(1, `{"id":1,"type":2,"version":"6.0.13"}`)[:20]},
		{"-truncated header", []byte{1, 0, 0}},
		{"-oversized frame cut short", append([]byte{1, 0, 0, 0, 0xff, 0xff, 0xff, 0xff}, `{"id":5,"type":6}`...)},
		{"-wrong payload type cut short", append([]byte{2, 0, 0, 0, 100, 0, 0, 0}, `{"id":5}`...)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a := startAgent(t, &Server{Name: "X", Handler: &testHandler{}})
			a.conn.Write(c.frame)
			a.noFrame(100 * time.Millisecond)
			select {
			case err := <-a.done:
				t.Fatalf("Serve returned %v before the stream ended", err)
			default:
			}
			a.conn.Close()
			err := a.wait()
			if !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Fatalf("Serve returned %v, want io.ErrUnexpectedEOF", err)
			}
		})
	}
}

// Time limits a request or Configure carries are clamped: no value makes
// an immediate timeout.
func TestSeconds(t *testing.T) {
	cases := map[int]time.Duration{-5: 0, 0: 0, 1: time.Second, 600: MaxRequestTimeout, 601: MaxRequestTimeout,
		9223372037: MaxRequestTimeout, 1<<63 - 1: MaxRequestTimeout}
	for n, want := range cases {
		if got := Seconds(n); got != want {
			t.Errorf("Seconds(%d) = %v, want %v", n, got, want)
		}
	}
	h := &testHandler{export: func(ctx context.Context, key string, p []string) (string, error) {
		d, _ := ctx.Deadline()
		return time.Until(d).Round(time.Second).String(), nil
	}}
	a := startAgent(t, &Server{Name: "X", Handler: h})
	a.send(`{"id":1,"type":8,"global_options":{"Timeout":9223372037,"SourceIP":""}}`)
	a.send(`{"id":2,"type":6,"key":"k"}`)
	if r := a.nextExport(); deref(r.Value) != "9m59s" && deref(r.Value) != "10m0s" {
		t.Errorf("Configure with Timeout 9223372037: request deadline %s ahead, want about 10m", deref(r.Value))
	}
}

func TestLoggerEscapesPercent(t *testing.T) {
	agent, pluginEnd := logAgent(t)
	log := NewConn(pluginEnd).Logger()
	go log.Warningf("pct=50%% verb=%s", "%d")
	f := nthLog(t, agent, 1)
	golden(t, "log_warning.bin", f)
	m, _ := Decode(f[8:])
	if l := m.(*LogRequest); l.Message != "pct=50%% verb=%%d" || l.Severity != SeverityWarning || l.ID != 0 {
		t.Errorf("log request %+v", l)
	}
	n := 1
	for sev, fn := range map[Severity]func(string, ...any){
		SeverityInfo: log.Infof, SeverityCritical: log.Criticalf, SeverityError: log.Errorf,
		SeverityDebug: log.Debugf, SeverityTrace: log.Tracef,
	} {
		go fn("100%")
		n++
		m, _ := Decode(nthLog(t, agent, n)[8:])
		if l := m.(*LogRequest); l.Severity != sev || l.Message != "100%%" {
			t.Errorf("severity %d: %+v", sev, l)
		}
	}
	var nilLog *Logger
	nilLog.Infof("discarded") // must not panic
}

func hasLog(logs []LogRequest, sev Severity, substr string) bool {
	return slices.ContainsFunc(logs, func(l LogRequest) bool {
		return l.Severity == sev && strings.Contains(l.Message, substr)
	})
}

// splitFrames returns the bodies of the frames in a captured stream.
func splitFrames(t *testing.T, path string) [][]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var bodies [][]byte
	for r := bytes.NewReader(b); ; {
		body, err := ReadFrame(r)
		if errors.Is(err, io.EOF) {
			return bodies
		}
		if err != nil {
			t.Fatalf("%s frame %d: %v", path, len(bodies)+1, err)
		}
		bodies = append(bodies, body)
	}
}

// The request streams captured from agents 6.0.14 and 7.0.9 decode as
// expected and drive whole sessions: every request that wants an answer gets
// exactly one with its id, Serve returns nil after Terminate.
func TestCapturedSessions(t *testing.T) {
	wantOpts := map[string]string{"CacheTTL": "0.5", "Timeout": "5"}
	wantParams := [][]string{{"timewait"}, nil, {"bogus"}, {""}, {`a"b`, "x ", "y,z"}}
	for _, c := range []struct {
		agent, version string
		timeout        int
	}{{"6.0.14", "6.0.13", 0}, {"7.0.9", "6.4.0", 60}} {
		for _, phase := range []string{"registration", "operational"} {
			t.Run(c.agent+"/"+phase, func(t *testing.T) {
				var mu sync.Mutex
				var gotParams [][]string
				var gotTimeouts []time.Duration
				h := &testHandler{export: func(ctx context.Context, key string, p []string) (string, error) {
					d, _ := ctx.Deadline()
					mu.Lock()
					gotParams = append(gotParams, p)
					gotTimeouts = append(gotTimeouts, time.Until(d).Round(time.Second))
					mu.Unlock()
					return "1", nil
				}}
				a := startAgent(t, &Server{Name: "TCPStatus", Handler: h})
				for _, body := range splitFrames(t, filepath.Join(framesDir, "agent-"+c.agent, phase+".bin")) {
					m, err := Decode(body)
					if err != nil {
						t.Fatalf("decode %s: %v", body, err)
					}
					a.send(string(body))
					switch m := m.(type) {
					case *RegisterRequest:
						if m.Version != c.version {
							t.Errorf("version %q, want %q", m.Version, c.version)
						}
						if r, ok := a.nextMsg().(*RegisterResponse); !ok || r.ID != m.ID || r.Name != "TCPStatus" {
							t.Errorf("register answer %+v", r)
						}
					case *ValidateRequest:
						if r, ok := a.nextMsg().(*ValidateResponse); !ok || r.ID != m.ID || r.Error != "" {
							t.Errorf("validate answer %+v", r)
						}
					case *ExportRequest:
						if m.Timeout != c.timeout {
							t.Errorf("export timeout %d, want %d", m.Timeout, c.timeout)
						}
						if r := a.nextExport(); r.ID != m.ID || deref(r.Value) != "1" {
							t.Errorf("export answer %+v", r)
						}
					case *ConfigureRequest:
						if m.GlobalOptions != (GlobalOptions{Timeout: 3}) {
							t.Errorf("global options %+v", m.GlobalOptions)
						}
					case *TerminateRequest:
						if (m.ID == 0) != (c.agent == "6.0.14") {
							t.Errorf("terminate id %d from %s", m.ID, c.agent)
						}
						if m.ID == 0 {
							a.conn.Close()
						}
					case *StartRequest:
					default:
						t.Errorf("unexpected %T from the agent", m)
					}
				}
				if err := a.wait(); err != nil {
					t.Fatal(err)
				}
				if phase == "registration" {
					if len(h.validated) != 1 || !maps.Equal(h.validated[0], wantOpts) {
						t.Errorf("validated %v, want %v", h.validated, wantOpts)
					}
					return
				}
				if len(h.confOpts) != 1 || !maps.Equal(h.confOpts[0], wantOpts) {
					t.Errorf("configured %v, want %v", h.confOpts, wantOpts)
				}
				if fmt.Sprintf("%q", gotParams) != fmt.Sprintf("%q", wantParams) {
					t.Errorf("parameters %q, want %q", gotParams, wantParams)
				}
				for i, d := range gotTimeouts {
					want := time.Duration(c.timeout) * time.Second
					if c.timeout == 0 {
						want = 3 * time.Second // the agent's Timeout; the test handler's Configure returns 0
					}
					if d != want {
						t.Errorf("export %d: deadline %v ahead, want %v", i, d, want)
					}
				}
			})
		}
	}
}
