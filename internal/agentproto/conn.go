package agentproto

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"sync"
)

// Conn is the plugin's end of the connection to the agent: one reader (the
// serve loop) and any number of concurrent senders.
type Conn struct {
	r  io.Reader
	mu sync.Mutex // one whole frame per Write
	w  io.Writer
}

// NewConn wraps the connection to the agent.
func NewConn(rw io.ReadWriter) *Conn { return &Conn{r: rw, w: rw} }

// Read reads and decodes the next message. Errors are those of ReadFrame and
// Decode; a *BodyError leaves the stream in step.
func (c *Conn) Read() (Message, error) {
	body, err := ReadFrame(c.r)
	if err != nil {
		return nil, err
	}
	return Decode(body)
}

// Send encodes msg and writes it as one frame, atomically with respect to
// other senders.
func (c *Conn) Send(msg Message) error {
	body, err := Encode(msg)
	if err != nil {
		return err
	}
	frame, err := AppendFrame(make([]byte, 0, HeaderSize+len(body)), body)
	if err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, err := c.w.Write(frame); err != nil {
		return fmt.Errorf("write %s message: %w", msg.Header().Type, err)
	}
	return nil
}

// Encode encodes a message body as JSON without HTML escaping (values such
// as "<state>" stay readable in the agent's log).
func Encode(msg Message) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(msg); err != nil {
		return nil, fmt.Errorf("encode %s message: %w", msg.Header().Type, err)
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

// Logger returns a logger writing log requests to the agent.
func (c *Conn) Logger() *Logger { return &Logger{c: c} }

// Logger sends log lines to the agent's log (as log requests, id 0). A nil
// *Logger discards everything. Send errors are ignored: a broken connection
// ends the serve loop anyway.
type Logger struct{ c *Conn }

// Log formats a line and sends it with the given severity. Every % in the
// result is doubled, since the agent uses the text as a format string.
func (l *Logger) Log(sev Severity, format string, args ...any) {
	if l == nil || l.c == nil {
		return
	}
	msg := format
	if len(args) > 0 {
		msg = fmt.Sprintf(format, args...)
	}
	_ = l.c.Send(&LogRequest{
		Common:   Common{ID: 0, Type: TypeLog},
		Severity: sev,
		Message:  EscapePercent(msg),
	})
}

// EscapePercent doubles every % so that the agent's printf prints it as is.
func EscapePercent(s string) string { return strings.ReplaceAll(s, "%", "%%") }

// Criticalf logs at critical level.
func (l *Logger) Criticalf(format string, args ...any) { l.Log(SeverityCritical, format, args...) }

// Errorf logs at error level.
func (l *Logger) Errorf(format string, args ...any) { l.Log(SeverityError, format, args...) }

// Warningf logs at warning level (shown by the agent's default DebugLevel).
func (l *Logger) Warningf(format string, args ...any) { l.Log(SeverityWarning, format, args...) }

// Infof logs at info level (always shown by the agent).
func (l *Logger) Infof(format string, args ...any) { l.Log(SeverityInfo, format, args...) }

// Debugf logs at debug level (agent DebugLevel 4 and above).
func (l *Logger) Debugf(format string, args ...any) { l.Log(SeverityDebug, format, args...) }

// Tracef logs at trace level (agent DebugLevel 5).
func (l *Logger) Tracef(format string, args ...any) { l.Log(SeverityTrace, format, args...) }
