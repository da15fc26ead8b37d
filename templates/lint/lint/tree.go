package lint

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strings"
)

// elem is one element of an export file: its text (for leaves), children
// in order and the line it starts on.
type elem struct {
	name string
	text string
	kids []*elem
	line int
}

// parse reads a whole XML document into a tree. Character data between
// child elements (indentation) is dropped.
func parse(data []byte) (*elem, error) {
	dec := xml.NewDecoder(bytes.NewReader(data))
	var stack []*elem
	var root *elem
	lineAt := func(off int64) int { return 1 + bytes.Count(data[:off], []byte("\n")) }
	for {
		off := dec.InputOffset()
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			e := &elem{name: t.Name.Local, line: lineAt(off)}
			if len(stack) == 0 {
				if root != nil {
					return nil, fmt.Errorf("line %d: second root element <%s>", e.line, e.name)
				}
				root = e
			} else {
				p := stack[len(stack)-1]
				p.kids = append(p.kids, e)
			}
			stack = append(stack, e)
		case xml.EndElement:
			e := stack[len(stack)-1]
			if len(e.kids) > 0 {
				e.text = ""
			}
			stack = stack[:len(stack)-1]
		case xml.CharData:
			if len(stack) > 0 {
				stack[len(stack)-1].text += string(t)
			}
		}
	}
	if root == nil {
		return nil, errors.New("no root element")
	}
	return root, nil
}

// kid returns the first child with the name, or nil.
func (e *elem) kid(name string) *elem {
	if e == nil {
		return nil
	}
	for _, k := range e.kids {
		if k.name == name {
			return k
		}
	}
	return nil
}

// val returns the text of the child with the name ("" if absent).
func (e *elem) val(name string) string {
	k := e.kid(name)
	if k == nil {
		return ""
	}
	return k.text
}

// has reports whether the child exists.
func (e *elem) has(name string) bool { return e.kid(name) != nil }

// list returns the children named item of the child named container, e.g.
// list("items", "item").
func (e *elem) list(container, item string) []*elem {
	c := e.kid(container)
	if c == nil {
		return nil
	}
	var out []*elem
	for _, k := range c.kids {
		if k.name == item {
			out = append(out, k)
		}
	}
	return out
}

// texts calls fn for the text of every leaf under e, with its line.
func (e *elem) texts(fn func(text string, line int)) {
	if e == nil {
		return
	}
	if len(e.kids) == 0 {
		if strings.TrimSpace(e.text) != "" {
			fn(e.text, e.line)
		}
		return
	}
	for _, k := range e.kids {
		k.texts(fn)
	}
}

// walk calls fn for e and every element under it, depth first.
func (e *elem) walk(fn func(*elem)) {
	if e == nil {
		return
	}
	fn(e)
	for _, k := range e.kids {
		k.walk(fn)
	}
}
