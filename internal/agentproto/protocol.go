package agentproto

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
)

// MessageType is the "type" field of every message body. The numbers are the
// ones agent 2 6.0.14 and 7.0 use (the same in both series).
type MessageType uint32

// Message types.
const (
	// TypeLog is a log line the plugin sends on its own (id 0); no reply.
	TypeLog MessageType = 1
	// TypeRegister is the agent's first request: who are you, what keys.
	TypeRegister MessageType = 2
	// TypeRegisterResponse answers TypeRegister.
	TypeRegisterResponse MessageType = 3
	// TypeStart is sent once to the operational process when the plugin
	// declares InterfaceRunner; no reply.
	TypeStart MessageType = 4
	// TypeTerminate tells the plugin to exit; no reply. Agent 6.0 sends it
	// with id 0, 7.0 with the next request id.
	TypeTerminate MessageType = 5
	// TypeExport asks for one item value.
	TypeExport MessageType = 6
	// TypeExportResponse answers TypeExport with a value or an error.
	TypeExportResponse MessageType = 7
	// TypeConfigure hands the operational process its configuration when the
	// plugin declares InterfaceConfigurator; no reply.
	TypeConfigure MessageType = 8
	// TypeValidate asks the registration process to check its configuration
	// when the plugin declares InterfaceConfigurator.
	TypeValidate MessageType = 9
	// TypeValidateResponse answers TypeValidate; a non-empty error aborts the
	// agent's start.
	TypeValidateResponse MessageType = 10
	// TypePeriod and TypePeriodResponse are reserved numbers no released
	// agent sends.
	TypePeriod         MessageType = 11
	TypePeriodResponse MessageType = 12 // see TypePeriod
)

var typeNames = map[MessageType]string{
	TypeLog: "log", TypeRegister: "register", TypeRegisterResponse: "register response",
	TypeStart: "start", TypeTerminate: "terminate", TypeExport: "export",
	TypeExportResponse: "export response", TypeConfigure: "configure", TypeValidate: "validate",
	TypeValidateResponse: "validate response", TypePeriod: "period", TypePeriodResponse: "period response",
}

// String returns the message type's name, or its number when unknown.
func (t MessageType) String() string {
	if n, ok := typeNames[t]; ok {
		return n
	}
	return "type " + strconv.FormatUint(uint64(t), 10)
}

// Interface bits of the register response: which optional requests the
// agent sends. The agent sends Export whatever the bits say.
const (
	InterfaceExporter     uint32 = 1 // item values (Export)
	InterfaceConfigurator uint32 = 2 // Validate and Configure
	InterfaceRunner       uint32 = 4 // Start
)

// Severity is the level of a log request. The agent drops other values and
// logs a line if its DebugLevel allows (Info always).
type Severity uint32

// Severities, as the agent numbers them.
const (
	SeverityInfo     Severity = 0
	SeverityCritical Severity = 1
	SeverityError    Severity = 2
	SeverityWarning  Severity = 3
	SeverityDebug    Severity = 4
	SeverityTrace    Severity = 5
)

// Common holds the fields of every message. A response carries the id of its
// request; messages the plugin sends on its own use id 0.
type Common struct {
	ID   uint32      `json:"id"`
	Type MessageType `json:"type"`
}

// Header returns the common fields, so every message type satisfies Message.
func (c Common) Header() Common { return c }

// Message is any decoded message body.
type Message interface{ Header() Common }

// LogRequest is a log line for the agent's log. The agent prefixes the
// plugin's name and uses Message as a printf format, so a literal % must be
// sent as %% (Logger does that).
type LogRequest struct {
	Common
	Severity Severity `json:"severity"`
	Message  string   `json:"message"`
}

// RegisterRequest opens the registration. Version is the agent's protocol
// version ("6.0.13" from agent 6.0.14, "6.4.0" from 7.0.x); it is logged,
// never checked.
type RegisterRequest struct {
	Common
	Version string `json:"version"`
}

// RegisterResponse names the plugin and lists its keys. Metrics is flat: key,
// description, key, description, ... A non-empty Error aborts the agent's
// start with that text; the other fields are then ignored.
type RegisterResponse struct {
	Common
	Name       string   `json:"name,omitempty"`
	Metrics    []string `json:"metrics,omitempty"`
	Interfaces uint32   `json:"interfaces,omitempty"`
	Error      string   `json:"error,omitempty"`
}

// ValidateRequest carries the plugin's configuration tree for checking.
type ValidateRequest struct {
	Common
	PrivateOptions *ConfigNode `json:"private_options,omitempty"`
}

// ValidateResponse answers ValidateRequest; an empty Error means valid.
type ValidateResponse struct {
	Common
	Error string `json:"error,omitempty"`
}

// GlobalOptions are the agent-wide settings sent with Configure.
type GlobalOptions struct {
	// Timeout is the agent's Timeout in seconds.
	Timeout int `json:"Timeout"`
	// SourceIP is the agent's SourceIP, or empty.
	SourceIP string `json:"SourceIP"`
}

// ConfigureRequest gives the operational process its configuration. The
// tree must be decoded again: validation happened in another process.
type ConfigureRequest struct {
	Common
	GlobalOptions  GlobalOptions `json:"global_options"`
	PrivateOptions *ConfigNode   `json:"private_options,omitempty"`
}

// StartRequest tells a runner to start background work; no reply.
type StartRequest struct{ Common }

// TerminateRequest tells the plugin to exit; no reply. Its id is 0 (6.0) or
// the next request id (7.0).
type TerminateRequest struct{ Common }

// ExportRequest asks for the value of one item key.
type ExportRequest struct {
	Common
	// Key is the bare key, without parameters.
	Key string `json:"key"`
	// Params are the key's parameters, unquoted; nil when the key had no
	// brackets, [""] for "key[]".
	Params []string `json:"parameters,omitempty"`
	// Timeout is the request's time limit in seconds, sent by agent 7.0 and
	// later (0: absent, use the configured timeout). The agent itself gives
	// up half a second after it.
	Timeout int `json:"timeout,omitempty"`
}

// ExportResponse answers ExportRequest with either a value or an error. The
// value is always a JSON string: the agent turns numbers into floats with six
// decimals and rejects arrays for passive checks.
type ExportResponse struct {
	Common
	Value *string `json:"value,omitempty"`
	Error string  `json:"error,omitempty"`
}

// MaxParams bounds the parameters of an Export request. A request with more
// is not decoded: it is a *BodyError wrapping ErrTooManyParams, answered
// "Too many parameters.". No key takes more than a few, and decoding the
// 2 million empty parameters of a 6 MB request would take 32 MB.
const MaxParams = 1024

// ErrTooManyParams reports an Export request with more than MaxParams
// parameters.
var ErrTooManyParams = errors.New("too many parameters")

// UnmarshalJSON decodes an Export request, refusing more than MaxParams
// parameters before allocating any of them.
func (m *ExportRequest) UnmarshalJSON(b []byte) error {
	type plain ExportRequest // no methods: no recursion
	var w struct {
		plain
		Params paramList `json:"parameters,omitempty"`
	}
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	*m = ExportRequest(w.plain)
	m.Params = w.Params
	return nil
}

// paramList is the parameters of an Export request while decoding.
type paramList []string

// UnmarshalJSON counts the elements of the array first, and decodes them
// into a slice of that exact size only when there are at most MaxParams.
func (p *paramList) UnmarshalJSON(b []byte) error {
	n, ok := countElements(b, MaxParams+1)
	switch {
	case !ok: // not an array: let encoding/json say what is wrong
	case n > MaxParams:
		return fmt.Errorf("%w: more than %d", ErrTooManyParams, MaxParams)
	default:
		*p = make([]string, 0, n)
	}
	s := (*[]string)(p)
	return json.Unmarshal(b, s)
}

// countElements counts the elements of the valid JSON array b, stopping at
// limit; false if b is not an array.
func countElements(b []byte, limit int) (int, bool) {
	p := peeker{b: b}
	p.space()
	if !p.byte('[') {
		return 0, false
	}
	p.space()
	if p.byte(']') {
		return 0, true
	}
	n := 0
	for n < limit {
		p.space()
		if !p.skip() {
			return n, true
		}
		n++
		p.space()
		if !p.byte(',') {
			break
		}
	}
	return n, true
}

// UnknownMessage is a well-formed body of a type this package does not
// handle (including the reserved Period types).
type UnknownMessage struct{ Common }

// Decode decodes one message body into the struct of its type (a pointer,
// e.g. *ExportRequest). A body whose id and type cannot be read at all (not
// a JSON object, an id of -1) is a *HeaderError. A body that does not
// decode otherwise (a field of the wrong JSON type, trailing data, nesting
// beyond encoding/json's limit, more than MaxParams parameters) is a
// *BodyError holding the id and type read from the start of the body, so
// the request can still be answered; the returned Message is then an
// *UnknownMessage with that header.
func Decode(body []byte) (Message, error) {
	var c Common
	if err := json.Unmarshal(body, &c); err != nil {
		if h, ok := peekHeader(body); ok {
			return &UnknownMessage{h}, &BodyError{Common: h, Err: err}
		}
		return nil, &HeaderError{Err: err}
	}
	var m Message
	switch c.Type {
	case TypeLog:
		m = &LogRequest{}
	case TypeRegister:
		m = &RegisterRequest{}
	case TypeRegisterResponse:
		m = &RegisterResponse{}
	case TypeStart:
		m = &StartRequest{}
	case TypeTerminate:
		m = &TerminateRequest{}
	case TypeExport:
		m = &ExportRequest{}
	case TypeExportResponse:
		m = &ExportResponse{}
	case TypeConfigure:
		m = &ConfigureRequest{}
	case TypeValidate:
		m = &ValidateRequest{}
	case TypeValidateResponse:
		m = &ValidateResponse{}
	default:
		return &UnknownMessage{c}, nil
	}
	if err := json.Unmarshal(body, m); err != nil {
		return &UnknownMessage{c}, &BodyError{Common: c, Err: err}
	}
	return m, nil
}

// HeaderError reports a whole frame whose body has no usable id and type
// (not JSON, not an object, an id of -1 or 4294967296...). The stream is still in step:
// the frame was read to its end, so the caller can drop it and go on.
type HeaderError struct{ Err error }

func (e *HeaderError) Error() string { return "decode message header: " + e.Err.Error() }

// Unwrap returns the JSON error.
func (e *HeaderError) Unwrap() error { return e.Err }

// BodyError reports a message whose header decoded but whose fields did not
// fit its type. The stream is still in step: the caller can answer the id.
type BodyError struct {
	Common
	Err error
}

// Error names the message and what did not decode.
func (e *BodyError) Error() string {
	return fmt.Sprintf("decode %s message %d: %v", e.Type, e.ID, e.Err)
}

// Unwrap returns the JSON error.
func (e *BodyError) Unwrap() error { return e.Err }
