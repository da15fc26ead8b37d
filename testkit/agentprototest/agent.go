// Package agentprototest is a fake Zabbix agent 2 for plugin tests: the
// agent's end of a plugin connection, over net.Pipe for a plugin served in
// the test's process or over the Unix socket a plugin process connected
// to. In the spirit of mdlayher/netlink's nltest, it is the one fake agent
// the protocol tests, the plugin's main tests and the fault tests share.
//
// It reads frames by hand (not with internal/agentproto, so it checks that
// package rather than trusting it, and so agentproto's own tests can use
// it): every frame must carry payload type 1 and a JSON object. Log
// messages are kept apart (Logs); a response whose id was claimed with
// Await goes to that channel; every other frame is queued for Next in
// arrival order. The first frame that breaks the protocol ends the reading
// and is reported by Err.
//
// It does not import testing: methods return errors, the tests decide what
// fails.
package agentprototest

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Message types of the agent 2 plugin protocol the fake agent itself
// needs (the protocol notes, section 3).
const (
	TypeLog                 = 1
	TypeRegister            = 2
	TypeRegisterResp        = 3
	TypeStart               = 4
	TypeTerminate           = 5
	TypeExport              = 6
	TypeExportResp          = 7
	TypeConfigure           = 8
	TypeValidate            = 9
	TypeValidateResp        = 10
	maxFrame                = 64 << 20
	writeTimeout            = 20 * time.Second
	payloadJSON      uint32 = 1
)

// Frame is one frame the plugin sent.
type Frame struct {
	Raw  []byte // header and body as read
	Body []byte // the JSON body
	ID   uint32 // its "id"
	Type uint32 // its "type"
	At   time.Time
}

// Agent is the agent's end of one plugin connection.
type Agent struct {
	conn   net.Conn
	wmu    sync.Mutex // one frame per write
	frames chan Frame // frames nobody awaits, in arrival order
	done   chan struct{}
	nextID atomic.Uint32

	mu       sync.Mutex
	logs     []Frame
	pending  map[uint32]chan Frame
	answered map[uint32]int // frames per id, logs excluded
	err      error
}

// New starts reading the plugin's frames from conn.
func New(conn net.Conn) *Agent {
	a := &Agent{conn: conn, frames: make(chan Frame, 4096), done: make(chan struct{}),
		pending: map[uint32]chan Frame{}, answered: map[uint32]int{}}
	go a.read()
	return a
}

// Pipe returns a fake agent on one end of a net.Pipe and the plugin's end.
func Pipe() (*Agent, net.Conn) {
	agentEnd, pluginEnd := net.Pipe()
	return New(agentEnd), pluginEnd
}

// Conn is the agent's end of the connection.
func (a *Agent) Conn() net.Conn { return a.conn }

// Close closes the agent's end, as an agent that stops.
func (a *Agent) Close() error { return a.conn.Close() }

// Done is closed when reading has ended (the plugin closed the connection,
// or a frame broke the protocol: see Err).
func (a *Agent) Done() <-chan struct{} { return a.done }

// Err is the protocol violation that ended the reading, if any; a closed
// connection is none.
func (a *Agent) Err() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.err
}

func (a *Agent) read() {
	defer close(a.done)
	defer close(a.frames)
	for {
		f, err := a.readFrame()
		if err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrClosedPipe) && !errors.Is(err, net.ErrClosed) && !errors.Is(err, io.ErrUnexpectedEOF) {
				a.mu.Lock()
				a.err = err
				a.mu.Unlock()
			}
			return
		}
		a.mu.Lock()
		if f.Type == TypeLog {
			a.logs = append(a.logs, f)
			a.mu.Unlock()
			continue
		}
		a.answered[f.ID]++
		ch := a.pending[f.ID]
		delete(a.pending, f.ID)
		a.mu.Unlock()
		if ch != nil {
			ch <- f
			continue
		}
		a.frames <- f
	}
}

// protocolError is a frame that breaks the protocol.
type protocolError struct{ msg string }

func (e *protocolError) Error() string { return e.msg }

func (a *Agent) readFrame() (Frame, error) {
	var h [8]byte
	if _, err := io.ReadFull(a.conn, h[:]); err != nil {
		return Frame{}, err
	}
	if typ := binary.LittleEndian.Uint32(h[:4]); typ != payloadJSON {
		return Frame{}, &protocolError{fmt.Sprintf("plugin sent payload type %d", typ)}
	}
	n := binary.LittleEndian.Uint32(h[4:])
	if n > maxFrame {
		return Frame{}, &protocolError{fmt.Sprintf("plugin sent a frame of %d bytes", n)}
	}
	raw := make([]byte, 8+n)
	copy(raw, h[:])
	if _, err := io.ReadFull(a.conn, raw[8:]); err != nil {
		return Frame{}, err
	}
	f := Frame{Raw: raw, Body: raw[8:], At: time.Now()}
	var c struct {
		ID   uint32 `json:"id"`
		Type uint32 `json:"type"`
	}
	if err := json.Unmarshal(f.Body, &c); err != nil {
		return Frame{}, &protocolError{fmt.Sprintf("plugin sent a body that is not a JSON message: %v: %q", err, f.Body)}
	}
	if c.Type == TypeLog && c.ID != 0 {
		return Frame{}, &protocolError{fmt.Sprintf("log message with id %d: %q", c.ID, f.Body)}
	}
	f.ID, f.Type = c.ID, c.Type
	return f, nil
}

// AppendFrame appends body as one frame of payload type typ.
func AppendFrame(b []byte, typ uint32, body []byte) []byte {
	b = binary.LittleEndian.AppendUint32(b, typ)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(body)))
	return append(b, body...)
}

// Write writes b as it is, in one write (20 s at most).
func (a *Agent) Write(b []byte) error {
	a.wmu.Lock()
	defer a.wmu.Unlock()
	a.conn.SetWriteDeadline(time.Now().Add(writeTimeout))
	_, err := a.conn.Write(b)
	return err
}

// Send writes body as one JSON frame.
func (a *Agent) Send(body []byte) error { return a.Write(AppendFrame(nil, payloadJSON, body)) }

// SendJSON encodes m and writes it as one frame.
func (a *Agent) SendJSON(m any) error {
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	return a.Send(b)
}

// NextID returns the next request id (the agent numbers from 1).
func (a *Agent) NextID() uint32 { return a.nextID.Add(1) }

// Await claims the next frame with id: it goes to the returned channel,
// not to Next. Call it before sending the request.
func (a *Agent) Await(id uint32) <-chan Frame {
	ch := make(chan Frame, 1)
	a.mu.Lock()
	a.pending[id] = ch
	a.mu.Unlock()
	return ch
}

// ErrNoFrame is Next's error when nothing came within the wait.
var ErrNoFrame = errors.New("no frame from the plugin")

// ErrClosed is Next's error when the reading has ended.
var ErrClosed = errors.New("plugin connection closed")

// Next returns the next frame nobody awaits, waiting up to wait.
func (a *Agent) Next(wait time.Duration) (Frame, error) {
	select {
	case f, ok := <-a.frames:
		if !ok {
			if err := a.Err(); err != nil {
				return Frame{}, err
			}
			return Frame{}, ErrClosed
		}
		return f, nil
	case <-time.After(wait):
		return Frame{}, fmt.Errorf("%w within %v", ErrNoFrame, wait)
	}
}

// Unclaimed returns the frames queued for Next without waiting.
func (a *Agent) Unclaimed() []Frame {
	var out []Frame
	for {
		select {
		case f, ok := <-a.frames:
			if !ok {
				return out
			}
			out = append(out, f)
		default:
			return out
		}
	}
}

// Logs returns the log messages received so far.
func (a *Agent) Logs() []Frame {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]Frame(nil), a.logs...)
}

// WaitLogs waits up to wait until n log messages have come and returns
// them all.
func (a *Agent) WaitLogs(n int, wait time.Duration) ([]Frame, error) {
	deadline := time.Now().Add(wait)
	for {
		logs := a.Logs()
		if len(logs) >= n {
			return logs, nil
		}
		select {
		case <-a.done:
			if logs = a.Logs(); len(logs) >= n {
				return logs, nil
			}
			return logs, fmt.Errorf("%d log messages, want %d: %w", len(logs), n, ErrClosed)
		case <-time.After(5 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return logs, fmt.Errorf("%d log messages within %v, want %d", len(logs), wait, n)
		}
	}
}

// Answered returns how many frames came with each id (logs excluded).
func (a *Agent) Answered() map[uint32]int {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make(map[uint32]int, len(a.answered))
	for id, n := range a.answered {
		out[id] = n
	}
	return out
}

// Export sends an Export request for key with params and timeout (seconds,
// 0: none, as agent 6.0) and returns its id and the channel its response
// arrives on.
func (a *Agent) Export(key string, params []string, timeout int) (uint32, <-chan Frame, error) {
	id := a.NextID()
	ch := a.Await(id)
	err := a.SendJSON(struct {
		ID      uint32   `json:"id"`
		Type    uint32   `json:"type"`
		Key     string   `json:"key"`
		Params  []string `json:"parameters,omitempty"`
		Timeout int      `json:"timeout,omitempty"`
	}{id, TypeExport, key, params, timeout})
	return id, ch, err
}

// Result is an Export response as the agent reads it: the value, or the
// item error as an *ItemError.
func (f Frame) Result() (string, error) {
	var r struct {
		Value json.RawMessage `json:"value"`
		Error string          `json:"error"`
	}
	if f.Type != TypeExportResp {
		return "", fmt.Errorf("response of type %d, want %d", f.Type, TypeExportResp)
	}
	if err := json.Unmarshal(f.Body, &r); err != nil {
		return "", err
	}
	if r.Error != "" {
		return "", &ItemError{r.Error}
	}
	var s string
	if len(r.Value) == 0 || json.Unmarshal(r.Value, &s) != nil {
		return "", fmt.Errorf("response value %s is not a JSON string", r.Value)
	}
	return s, nil
}

// ItemError is an Export response with an error: the item is unsupported.
type ItemError struct{ Text string }

func (e *ItemError) Error() string { return e.Text }
