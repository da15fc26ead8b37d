package agentproto

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"zabbix-agent2-plugin-tcpstatus/testkit/agentprototest"
)

var update = flag.Bool("update", false, "rewrite the golden frames in testdata/frames")

// framesDir holds the golden frames (repository testdata, shared with the
// real-agent captures).
var framesDir = filepath.Join("..", "..", "testdata", "frames")

// golden compares a whole frame with testdata/frames/<name>, or rewrites the
// file with -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join(framesDir, name)
	if *update {
		if err := os.MkdirAll(framesDir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(want, got) {
		t.Errorf("frame %s differs (-want +got):\n-%s\n+%s\n-%q\n+%q", name, hex.EncodeToString(want), hex.EncodeToString(got), want, got)
	}
}

// rawFrame builds a frame by hand, independently of AppendFrame.
func rawFrame(typ uint32, body string) []byte {
	b := make([]byte, 8, 8+len(body))
	binary.LittleEndian.PutUint32(b[0:], typ)
	binary.LittleEndian.PutUint32(b[4:], uint32(len(body)))
	return append(b, body...)
}

// fakeAgent drives a Server over net.Pipe the way agent 2 does, with the
// test kit's fake agent (which parses frames by hand, not with ReadFrame);
// its methods fail the test instead of returning errors.
type fakeAgent struct {
	t    *testing.T
	a    *agentprototest.Agent
	conn net.Conn   // the agent's end
	done chan error // Serve's result
}

func startAgent(t *testing.T, srv *Server) *fakeAgent {
	t.Helper()
	a, pluginEnd := agentprototest.Pipe()
	fa := &fakeAgent{t: t, a: a, conn: a.Conn(), done: make(chan error, 1)}
	go func() { fa.done <- srv.Serve(NewConn(pluginEnd)) }()
	t.Cleanup(func() {
		a.Close()
		pluginEnd.Close()
		if err := a.Err(); err != nil {
			t.Errorf("fake agent: %v", err)
		}
	})
	return fa
}

// send writes a request body as the agent does: one frame.
func (a *fakeAgent) send(body string) {
	a.t.Helper()
	if err := a.a.Send([]byte(body)); err != nil {
		a.t.Fatalf("agent write: %v", err)
	}
}

// sendMsg encodes and writes a request.
func (a *fakeAgent) sendMsg(m Message) {
	a.t.Helper()
	if err := a.a.SendJSON(m); err != nil {
		a.t.Fatalf("agent write: %v", err)
	}
}

// next returns the next non-log frame from the plugin, header included.
func (a *fakeAgent) next() []byte {
	a.t.Helper()
	f, err := a.a.Next(5 * time.Second)
	if err != nil {
		a.t.Fatal(err)
	}
	return f.Raw
}

// nextMsg decodes the next non-log frame.
func (a *fakeAgent) nextMsg() Message {
	a.t.Helper()
	f := a.next()
	m, err := Decode(f[8:])
	if err != nil {
		a.t.Fatalf("decode %q: %v", f[8:], err)
	}
	return m
}

// nextExport decodes the next frame as an export response.
func (a *fakeAgent) nextExport() *ExportResponse {
	a.t.Helper()
	m := a.nextMsg()
	r, ok := m.(*ExportResponse)
	if !ok {
		a.t.Fatalf("got %T, want *ExportResponse", m)
	}
	return r
}

// noFrame checks that the plugin sends nothing (except logs) for d.
func (a *fakeAgent) noFrame(d time.Duration) {
	a.t.Helper()
	if f, err := a.a.Next(d); !errors.Is(err, agentprototest.ErrNoFrame) {
		a.t.Fatalf("unexpected frame %q (%v)", f.Raw, err)
	}
}

// wait returns Serve's result; it fails the test if Serve is still running
// after 5 s.
func (a *fakeAgent) wait() error {
	a.t.Helper()
	select {
	case err := <-a.done:
		return err
	case <-time.After(5 * time.Second):
		a.t.Fatal("Serve did not return within 5 s")
	}
	return nil
}

func (a *fakeAgent) logged() []LogRequest {
	var out []LogRequest
	for _, f := range a.a.Logs() {
		var l LogRequest
		if err := json.Unmarshal(f.Body, &l); err != nil {
			a.t.Errorf("bad log frame %q", f.Body)
		}
		out = append(out, l)
	}
	return out
}

// testHandler is a Handler built from functions; nil ones do nothing.
type testHandler struct {
	metrics   []Metric
	validate  func(map[string]string) error
	configure func(GlobalOptions, map[string]string) time.Duration
	export    func(ctx context.Context, key string, params []string) (string, error)

	mu         sync.Mutex
	validated  []map[string]string
	configured []GlobalOptions
	confOpts   []map[string]string
}

var testMetrics = []Metric{
	{Key: "tcp.status", Description: "Number of TCP sockets in a state."},
	{Key: "tcp.status.get", Description: "Number of TCP sockets in every state, as JSON."},
}

func (h *testHandler) Metrics() ([]Metric, error) {
	if h.metrics == nil {
		return testMetrics, nil
	}
	return h.metrics, nil
}

func (h *testHandler) Validate(opts map[string]string) error {
	h.mu.Lock()
	h.validated = append(h.validated, opts)
	h.mu.Unlock()
	if h.validate != nil {
		return h.validate(opts)
	}
	return nil
}

func (h *testHandler) Configure(g GlobalOptions, opts map[string]string) time.Duration {
	h.mu.Lock()
	h.configured = append(h.configured, g)
	h.confOpts = append(h.confOpts, opts)
	h.mu.Unlock()
	if h.configure != nil {
		return h.configure(g, opts)
	}
	return 0
}

func (h *testHandler) Export(ctx context.Context, key string, params []string) (string, error) {
	if h.export != nil {
		return h.export(ctx, key, params)
	}
	b, _ := json.Marshal(params)
	return key + string(b), nil
}

// logAgent returns a fake agent and the plugin's end of its connection,
// closed at cleanup, for tests that only watch log frames.
func logAgent(t *testing.T) (*agentprototest.Agent, net.Conn) {
	a, pluginEnd := agentprototest.Pipe()
	t.Cleanup(func() { a.Close(); pluginEnd.Close() })
	return a, pluginEnd
}

// nthLog waits for the n-th log frame (from 1) and returns it whole.
func nthLog(t *testing.T, a *agentprototest.Agent, n int) []byte {
	t.Helper()
	logs, err := a.WaitLogs(n, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	return logs[n-1].Raw
}
