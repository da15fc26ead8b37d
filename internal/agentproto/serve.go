package agentproto

import (
	"context"
	"errors"
	"fmt"
	"io"
	"runtime/debug"
	"sync"
	"time"

	"zabbix-agent2-plugin-tcpstatus/internal/zbx"
)

// Metric is one key the plugin registers, with the description the agent
// shows (capital first letter, final period).
type Metric struct {
	Key         string
	Description string
}

// Handler is what a plugin implements. Serve calls Metrics, Validate and
// Configure from its read loop, one at a time, and Export concurrently.
type Handler interface {
	// Metrics lists the keys to register. An error is sent to the agent as
	// the registration error, which stops its start.
	Metrics() ([]Metric, error)
	// Validate checks the options in the registration process. The error
	// text goes to the operator as is (write it Zabbix style).
	Validate(opts map[string]string) error
	// Configure applies the options in the operational process. It returns
	// the time limit of requests that carry none (agent 6.0), or 0 for the
	// agent's Timeout. It cannot fail: it logs and falls back to defaults.
	Configure(global GlobalOptions, opts map[string]string) time.Duration
	// Export answers one item. ctx ends at the request's time limit or when
	// serving stops. The error text goes to the operator as is.
	Export(ctx context.Context, key string, params []string) (string, error)
}

// Texts of the item errors Serve produces itself.
const (
	TimeoutText  = zbx.TimeoutText
	InternalText = zbx.InternalText
)

// Defaults of Server.
const (
	DefaultTimeout     = 3 * time.Second // the agent's default Timeout
	DefaultMaxInFlight = 1000            // agent 7.0's default plugin capacity
)

// Server answers the agent's requests on one connection.
type Server struct {
	// Name is the plugin name; it must equal <Name> in the agent's
	// Plugins.<Name>.System.Path line.
	Name string
	// Handler does the work.
	Handler Handler
	// DefaultTimeout limits a request that carries no timeout when
	// Configure gave none either (DefaultTimeout if zero).
	DefaultTimeout time.Duration
	// MaxInFlight bounds the Export calls running at once, counting those
	// already answered with a timeout but not yet returned; beyond it a
	// request is answered with an error at once (DefaultMaxInFlight if
	// zero).
	MaxInFlight int
}

// Serve runs the protocol on c until the agent sends Terminate or closes the
// connection (both return nil; after a Terminate with id 0, agent 6.0's,
// Serve first waits up to half a second for the agent to hang up), or the
// connection fails or ends inside a frame (the read error is returned). No
// content of the stream stops it otherwise: every request whose id and type
// can be read gets exactly one answer, an error if it is too large
// (MaxReadSize), does not decode or has too many parameters (MaxParams);
// frames without a readable id and type, or of a payload type other than
// JSON, are read to their end, logged and dropped; panics of the handler
// become item errors.
// Export calls still running when Serve returns see their context cancelled;
// their answers are dropped.
func (s *Server) Serve(c *Conn) error {
	log := c.Logger()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	limit := s.MaxInFlight
	if limit <= 0 {
		limit = DefaultMaxInFlight
	}
	st := &session{s: s, c: c, log: log, ctx: ctx, slots: make(chan struct{}, limit)}
	for {
		msg, err := c.Read()
		var fe *FrameError
		var be *BodyError
		var he *HeaderError
		switch {
		case errors.As(err, &fe):
			// Read to its end and dropped: the stream is in step.
			st.discarded(fe)
			continue
		case errors.As(err, &be):
			st.badRequest(be)
			continue
		case errors.As(err, &he):
			// Exiting would take the agent down with the plugin; the
			// frame was read whole, so the next one can still be served.
			log.Warningf("ignoring a frame that is not a request: %v", he)
			continue
		case errors.Is(err, io.EOF):
			log.Debugf("connection closed by the agent")
			return nil
		case err != nil:
			return err
		}
		switch m := msg.(type) {
		case *RegisterRequest:
			st.register(m)
		case *ValidateRequest:
			st.validate(m)
		case *ConfigureRequest:
			st.configure(m)
		case *StartRequest:
			log.Debugf("start request received")
		case *ExportRequest:
			st.export(m)
		case *TerminateRequest:
			log.Debugf("terminate request received")
			if m.ID == 0 {
				awaitClose(c, terminateGrace)
			}
			return nil
		default:
			h := msg.Header()
			log.Warningf("ignoring unexpected %s message with id %d", h.Type, h.ID)
		}
	}
}

// terminateGrace bounds the wait for the agent to hang up after a Terminate
// with id 0. Agent 6.0 sends that and closes its end 2-80 ms later without
// waiting for the plugin; a plugin that closes first makes it log a burst of
// "failed to read response ... EOF" lines. Agent 7.0 numbers Terminate like
// any request and keeps the connection open until the plugin exits, killing
// it after PluginTimeout (1 s at the least), so that case returns at once.
const terminateGrace = 500 * time.Millisecond

// awaitClose reads and drops frames until the agent closes the connection,
// for at most d. A read still blocked after d ends when the caller closes
// the connection.
func awaitClose(c *Conn, d time.Duration) {
	closed := make(chan struct{})
	go func() {
		defer close(closed)
		for {
			var fe *FrameError
			if _, err := ReadFrame(c.r); err != nil && !errors.As(err, &fe) {
				return
			}
		}
	}()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-closed:
	case <-t.C:
	}
}

// session is the state of one Serve call.
type session struct {
	s     *Server
	c     *Conn
	log   *Logger
	ctx   context.Context
	slots chan struct{} // one token per running Export call

	configured time.Duration // from Configure; 0 until then
}

func (st *session) send(m Message) {
	if err := st.c.Send(m); err != nil {
		st.log.Debugf("%v", err)
	}
}

// badRequest answers a request whose body could not be decoded.
func (st *session) badRequest(be *BodyError) {
	text := zbx.Sentence("cannot decode request: " + be.Err.Error())
	if errors.Is(be.Err, ErrTooManyParams) {
		text = "Too many parameters."
	}
	if !st.reply(be.Common, text) {
		st.log.Warningf("%v", be)
	}
}

// discarded answers, when its id and type can be read from the start of the
// body, a request too large to be read, and logs every discarded frame.
func (st *session) discarded(fe *FrameError) {
	if errors.Is(fe.Err, ErrFrameTooLarge) {
		if h, ok := peekHeader(fe.Head); ok && st.reply(h, fmt.Sprintf("Request too large: %d bytes, the limit is %d.", fe.Length, MaxReadSize)) {
			st.log.Warningf("answered %s request %d with an error: %v", h.Type, h.ID, fe)
			return
		}
	}
	st.log.Warningf("%v", fe)
}

// reply answers request h with the error text if it is a request that has
// an answer (Export, Validate, Register) and a non-zero id (id 0 is never
// a request's: agent 7.0 takes every frame with id 0 for a log line). It
// reports whether it answered.
func (st *session) reply(h Common, text string) bool {
	if h.ID == 0 {
		return false
	}
	id := h.ID
	switch h.Type {
	case TypeExport:
		st.send(&ExportResponse{Common: Common{ID: id, Type: TypeExportResponse}, Error: text})
	case TypeValidate:
		st.send(&ValidateResponse{Common: Common{ID: id, Type: TypeValidateResponse}, Error: text})
	case TypeRegister:
		st.send(&RegisterResponse{Common: Common{ID: id, Type: TypeRegisterResponse}, Error: text})
	default:
		return false
	}
	return true
}

func (st *session) register(m *RegisterRequest) {
	st.log.Debugf("agent protocol version %q", m.Version)
	resp := &RegisterResponse{Common: Common{ID: m.ID, Type: TypeRegisterResponse}}
	metrics, err := st.metrics()
	if err == nil {
		err = checkMetrics(metrics)
	}
	switch {
	case err != nil:
		resp.Error = zbx.Sentence(err.Error())
	case st.s.Name == "":
		resp.Error = "Plugin has no name."
	default:
		resp.Name = st.s.Name
		resp.Interfaces = InterfaceExporter | InterfaceConfigurator | InterfaceRunner
		for _, mt := range metrics {
			resp.Metrics = append(resp.Metrics, mt.Key, mt.Description)
		}
	}
	st.send(resp)
}

// guard runs f, one call into the Handler. A panic in it is logged with
// its stack ("panic while <doing> <what>") and returned as a *handlerPanic,
// so no handler panic stops the plugin: this is the plugin's one recover on
// the path of a request.
func (st *session) guard(doing, what string, f func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			p := &handlerPanic{doing: doing, value: r}
			if what != "" {
				doing += " " + what
			}
			st.log.Errorf("panic while %s: %v\n%s", doing, r, debug.Stack())
			err = p
		}
	}()
	return f()
}

// handlerPanic is a panic guard caught.
type handlerPanic struct {
	doing string
	value any
}

// Error is "Internal error while <doing>: <value>.".
func (p *handlerPanic) Error() string {
	return zbx.Sentence(fmt.Sprintf("internal error while %s: %v", p.doing, p.value))
}

func (st *session) metrics() (ms []Metric, err error) {
	err = st.guard("listing metrics", "", func() (err error) {
		ms, err = st.s.Handler.Metrics()
		return err
	})
	return ms, err
}

// checkMetrics applies the agent's rules for registered metrics
// (zbx.Registration) before they are sent.
func checkMetrics(ms []Metric) error {
	if len(ms) == 0 {
		return errors.New("plugin declares no metrics")
	}
	var r zbx.Registration
	for _, m := range ms {
		if err := r.Add(m.Key, m.Description); err != nil {
			return err
		}
	}
	return nil
}

func (st *session) validate(m *ValidateRequest) {
	resp := &ValidateResponse{Common: Common{ID: m.ID, Type: TypeValidateResponse}}
	opts, err := m.PrivateOptions.Options()
	if err != nil {
		resp.Error = zbx.Sentence("invalid plugin configuration: " + err.Error())
	} else {
		st.log.Debugf("validating %s", m.PrivateOptions.Summary())
		if err := st.callValidate(opts); err != nil {
			resp.Error = err.Error()
			if resp.Error == "" {
				resp.Error = "Invalid plugin configuration."
			}
		}
	}
	st.send(resp)
}

func (st *session) callValidate(opts map[string]string) error {
	return st.guard("validating the configuration", "", func() error { return st.s.Handler.Validate(opts) })
}

func (st *session) configure(m *ConfigureRequest) {
	opts, err := m.PrivateOptions.Options()
	if err != nil {
		st.log.Warningf("plugin options ignored, using defaults: %v", err)
		opts = map[string]string{}
	} else {
		st.log.Debugf("configuring with global timeout %ds, %s", m.GlobalOptions.Timeout, m.PrivateOptions.Summary())
	}
	_ = st.guard("configuring", "", func() error {
		st.configured = st.s.Handler.Configure(m.GlobalOptions, opts)
		return nil
	})
	if st.configured <= 0 {
		st.configured = Seconds(m.GlobalOptions.Timeout)
	}
}

// answerMargin is how much earlier than the agent's own limit a request
// without a timeout field (agent 6.0) is answered, so that the operator sees
// the plugin's timeout text instead of the agent's "timeout occurred".
const answerMargin = 100 * time.Millisecond

// MaxRequestTimeout bounds the time limit a request carries (agent 7.0
// sends the item's timeout, which Zabbix 7.0 lets a server set up to 10
// minutes): a larger value, up to the 68 years of a 32-bit count of
// seconds in the JSON, would otherwise overflow a time.Duration into a
// negative one, an immediate timeout.
const MaxRequestTimeout = 10 * time.Minute

// Seconds converts a timeout in seconds from the agent into a duration:
// clamped to MaxRequestTimeout, and 0 for zero or negative values.
func Seconds(n int) time.Duration {
	switch {
	case n <= 0:
		return 0
	case n >= int(MaxRequestTimeout/time.Second):
		return MaxRequestTimeout
	}
	return time.Duration(n) * time.Second
}

// timeout is the time limit of one request: its own (7.0, which waits 0.5 s
// longer) clamped to MaxRequestTimeout, else the configured one less
// answerMargin, else the server default less answerMargin.
func (st *session) timeout(m *ExportRequest) time.Duration {
	if d := Seconds(m.Timeout); d > 0 {
		return d
	}
	d := DefaultTimeout
	switch {
	case st.configured > 0:
		d = min(st.configured, MaxRequestTimeout)
	case st.s.DefaultTimeout > 0:
		d = min(st.s.DefaultTimeout, MaxRequestTimeout)
	}
	if d > 2*answerMargin {
		d -= answerMargin
	}
	return d
}

// export starts one Export call and answers it exactly once: with the
// handler's result, or with TimeoutText at the time limit if the handler is
// still running, or at once with an error if too many calls are running.
func (st *session) export(m *ExportRequest) {
	select {
	case st.slots <- struct{}{}:
	default:
		st.send(&ExportResponse{
			Common: Common{ID: m.ID, Type: TypeExportResponse},
			Error:  fmt.Sprintf("Too many requests in progress (limit %d).", cap(st.slots)),
		})
		return
	}
	d := st.timeout(m)
	ctx, cancel := context.WithTimeout(st.ctx, d)
	var once sync.Once
	reply := func(v string, err error) {
		once.Do(func() { st.answer(m, v, err) })
	}
	timer := time.AfterFunc(d, func() { reply("", errors.New(TimeoutText)) })
	go func() {
		defer func() { <-st.slots }()
		defer cancel()
		v, err := st.callExport(ctx, m)
		timer.Stop()
		if err != nil && (errors.Is(err, context.DeadlineExceeded) || ctx.Err() != nil && errors.Is(err, context.Canceled)) {
			err = errors.New(TimeoutText)
		}
		reply(v, err)
	}()
}

func (st *session) callExport(ctx context.Context, m *ExportRequest) (v string, err error) {
	err = st.guard("answering", m.Key, func() (err error) {
		v, err = st.s.Handler.Export(ctx, m.Key, m.Params)
		return err
	})
	if _, ok := err.(*handlerPanic); ok {
		return "", errors.New(InternalText)
	}
	return v, err
}

func (st *session) answer(m *ExportRequest, v string, err error) {
	resp := &ExportResponse{Common: Common{ID: m.ID, Type: TypeExportResponse}}
	if err != nil {
		resp.Error = err.Error()
		if resp.Error == "" {
			resp.Error = "Unknown error."
		}
	} else {
		resp.Value = &v
	}
	err = st.c.Send(resp)
	if errors.Is(err, ErrFrameTooLarge) {
		resp.Value, resp.Error = nil, fmt.Sprintf("Value too large to send: %d bytes.", len(v))
		err = st.c.Send(resp)
	}
	if err != nil {
		st.log.Debugf("%v", err)
	}
}
