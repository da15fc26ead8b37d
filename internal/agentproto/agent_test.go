package agentproto

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"flag"
	"io"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
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

// fakeAgent drives a Server over net.Pipe the way agent 2 does. A reader
// goroutine takes every frame the plugin writes (net.Pipe blocks writers
// until someone reads), parsing frames by hand, not with ReadFrame.
type fakeAgent struct {
	t      *testing.T
	conn   net.Conn
	frames chan []byte // whole frames from the plugin, logs excluded
	done   chan error  // Serve's result

	mu   sync.Mutex
	logs []LogRequest
}

func startAgent(t *testing.T, srv *Server) *fakeAgent {
	t.Helper()
	agentEnd, pluginEnd := net.Pipe()
	a := &fakeAgent{t: t, conn: agentEnd, frames: make(chan []byte, 4096), done: make(chan error, 1)}
	go func() { a.done <- srv.Serve(NewConn(pluginEnd)) }()
	go a.readLoop()
	t.Cleanup(func() { agentEnd.Close(); pluginEnd.Close() })
	return a
}

func (a *fakeAgent) readLoop() {
	for {
		var h [8]byte
		if _, err := io.ReadFull(a.conn, h[:]); err != nil {
			close(a.frames)
			return
		}
		body := make([]byte, binary.LittleEndian.Uint32(h[4:]))
		if _, err := io.ReadFull(a.conn, body); err != nil {
			close(a.frames)
			return
		}
		if binary.LittleEndian.Uint32(h[0:]) != 1 {
			a.t.Errorf("plugin wrote payload type %d", binary.LittleEndian.Uint32(h[0:]))
		}
		var c Common
		if err := json.Unmarshal(body, &c); err != nil {
			a.t.Errorf("plugin wrote a frame that is not JSON: %q", body)
			continue
		}
		if c.Type == TypeLog {
			var l LogRequest
			if err := json.Unmarshal(body, &l); err != nil || c.ID != 0 {
				a.t.Errorf("bad log frame %q", body)
			}
			a.mu.Lock()
			a.logs = append(a.logs, l)
			a.mu.Unlock()
			continue
		}
		a.frames <- append(h[:], body...)
	}
}

// send writes a request body as the agent does: one frame.
func (a *fakeAgent) send(body string) {
	a.t.Helper()
	if _, err := a.conn.Write(rawFrame(1, body)); err != nil {
		a.t.Fatalf("agent write: %v", err)
	}
}

// sendMsg encodes and writes a request.
func (a *fakeAgent) sendMsg(m Message) {
	a.t.Helper()
	b, err := json.Marshal(m)
	if err != nil {
		a.t.Fatal(err)
	}
	a.send(string(b))
}

// next returns the next non-log frame from the plugin.
func (a *fakeAgent) next() []byte {
	a.t.Helper()
	select {
	case f, ok := <-a.frames:
		if !ok {
			a.t.Fatal("plugin closed the connection")
		}
		return f
	case <-time.After(5 * time.Second):
		a.t.Fatal("no frame from the plugin within 5 s")
	}
	return nil
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
	select {
	case f := <-a.frames:
		a.t.Fatalf("unexpected frame %q", f)
	case <-time.After(d):
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
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]LogRequest(nil), a.logs...)
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

// netPipe returns both ends of an in-memory connection, closed at cleanup.
func netPipe(t *testing.T) (agentEnd, pluginEnd net.Conn) {
	agentEnd, pluginEnd = net.Pipe()
	t.Cleanup(func() { agentEnd.Close(); pluginEnd.Close() })
	return agentEnd, pluginEnd
}

// readRaw reads one whole frame by hand.
func readRaw(t *testing.T, r net.Conn) []byte {
	t.Helper()
	r.SetReadDeadline(time.Now().Add(5 * time.Second))
	var h [8]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		t.Fatal(err)
	}
	body := make([]byte, binary.LittleEndian.Uint32(h[4:]))
	if _, err := io.ReadFull(r, body); err != nil {
		t.Fatal(err)
	}
	return append(h[:], body...)
}
