package agentproto

import (
	"bytes"
	"encoding/json"
	"strconv"
)

// peekHeader reads the top-level "id" and "type" members of a JSON object
// without decoding the rest, so that a request whose body does not decode
// (trailing data, nesting beyond the decoder's limit, a field of the wrong
// type) or that is too large to read whole can still be answered.
//
// body may be cut short (the head of a discarded frame): members after the
// cut are not seen. Members are matched as encoding/json matches them
// (case-insensitively, the last of duplicates wins), and a member missing
// or null reads as 0, so whenever encoding/json decodes a Common from body,
// peekHeader returns the same one. In addition a string holding a decimal
// number is taken as that number. ok is false when body does not start
// with an object, or when a seen id or type is anything else (a negative
// or fractional number, one above the uint32 range, an object...).
//
// It allocates nothing but the unescaped names of escaped member names, and
// its cost is linear in len(body) at any nesting depth.
func peekHeader(body []byte) (c Common, ok bool) {
	p := peeker{b: body}
	p.space()
	if !p.byte('{') {
		return c, false
	}
	ok = true
	for {
		p.space()
		name, done := p.str()
		if !done {
			return c, ok
		}
		p.space()
		if !p.byte(':') {
			return c, ok
		}
		p.space()
		start := p.i
		if !p.skip() {
			return c, ok // cut short inside the value
		}
		val := bytes.TrimRight(body[start:p.i], " \t\r\n")
		isID, isType := memberIs(name, "id"), memberIs(name, "type")
		if isID || isType {
			n, valid := uint32Value(val)
			switch {
			case !valid:
				ok = false
			case isID:
				c.ID = n
			default:
				c.Type = MessageType(n)
			}
		}
		p.space()
		if !p.byte(',') {
			return c, ok
		}
	}
}

// peeker is a cursor over a JSON text for peekHeader.
type peeker struct {
	b []byte
	i int
}

func (p *peeker) space() {
	for p.i < len(p.b) {
		switch p.b[p.i] {
		case ' ', '\t', '\r', '\n':
			p.i++
		default:
			return
		}
	}
}

// byte consumes c if it is next.
func (p *peeker) byte(c byte) bool {
	if p.i < len(p.b) && p.b[p.i] == c {
		p.i++
		return true
	}
	return false
}

// str consumes a string and returns its raw content (escapes kept); false
// if no string starts here or it is cut short.
func (p *peeker) str() ([]byte, bool) {
	if p.i >= len(p.b) || p.b[p.i] != '"' {
		return nil, false
	}
	for j := p.i + 1; j < len(p.b); j++ {
		switch p.b[j] {
		case '\\':
			j++
		case '"':
			s := p.b[p.i+1 : j]
			p.i = j + 1
			return s, true
		}
	}
	return nil, false
}

// skip consumes one value of any kind and depth, stopping before the comma
// or closing bracket that follows it; false if the text ends first.
func (p *peeker) skip() bool {
	depth := 0
	for p.i < len(p.b) {
		switch p.b[p.i] {
		case '"':
			if _, ok := p.str(); !ok {
				return false
			}
			if depth == 0 {
				return true
			}
			continue
		case '{', '[':
			depth++
		case '}', ']':
			if depth == 0 {
				return true
			}
			if depth--; depth == 0 {
				p.i++
				return true
			}
		case ',':
			if depth == 0 {
				return true
			}
		}
		p.i++
	}
	return false
}

// memberIs reports whether the raw member name matches want the way
// encoding/json matches a field name: unescaped, case-insensitively.
func memberIs(raw []byte, want string) bool {
	if bytes.IndexByte(raw, '\\') < 0 {
		return bytes.EqualFold(raw, []byte(want))
	}
	if len(raw) > 64 {
		return false
	}
	var s string
	if json.Unmarshal(append(append([]byte{'"'}, raw...), '"'), &s) != nil {
		return false
	}
	return bytes.EqualFold([]byte(s), []byte(want))
}

// uint32Value reads an id or type: a JSON number that is a uint32 (as
// encoding/json accepts it), null (0), or a string holding such a number.
func uint32Value(v []byte) (uint32, bool) {
	if string(v) == "null" {
		return 0, true
	}
	if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
		v = v[1 : len(v)-1]
	}
	n, err := strconv.ParseUint(string(v), 10, 32)
	return uint32(n), err == nil
}
