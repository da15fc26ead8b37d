package agentproto

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
)

func TestPeekHeader(t *testing.T) {
	cases := []struct {
		body string
		want Common
		ok   bool
	}{
		{`{"id":3,"type":6,"key":"k"}`, Common{3, 6}, true},
		{` { "type" : 9 , "id" : 4 } `, Common{4, 9}, true},
		{`{"ID":5,"Type":6}`, Common{5, 6}, true},          // encoding/json matches names case-insensitively
		{`{"\u0069d":5,"type":6}`, Common{5, 6}, true},     // escaped name
		{`{"id":1,"id":7,"type":6}`, Common{7, 6}, true},   // the last wins
		{`{"id":"42","type":6}`, Common{42, 6}, true},      // a string holding a number
		{`{"id":null,"type":6}`, Common{0, 6}, true},       // null reads as 0
		{`{"type":6}`, Common{0, 6}, true},                 // missing
		{`{"id":8,"type":6} trailing`, Common{8, 6}, true}, // trailing data
		{`{"x":{"id":1,"a":[{"type":2}]},"id":9,"type":6}`, Common{9, 6}, true},
		{`{"x":"\"id\":1,","id":10,"type":6}`, Common{10, 6}, true},
		{`{"x":` + strings.Repeat("[", 20000) + strings.Repeat("]", 20000) + `,"id":11,"type":9}`, Common{11, 9}, true},
		{`{"id":12,"type":6,"key":"cut sho`, Common{12, 6}, true}, // cut short after the header
		{`{"id":13,"type":6`, Common{13, 0}, true},                // type cut short: not seen
		{`{"type":6,"id":4294967295}`, Common{4294967295, 6}, true},
		{`{"id":-44,"type":6}`, Common{0, 6}, false},
		{`{"id":45.5,"type":6}`, Common{0, 6}, false},
		{`{"id":4294967296,"type":6}`, Common{0, 6}, false},
		{`{"id":1e2,"type":6}`, Common{0, 6}, false},
		{`{"id":"x","type":6}`, Common{0, 6}, false},
		{`{"id":14,"type":{}}`, Common{14, 0}, false},
		{`[{"id":1,"type":6}]`, Common{}, false},
		{`"id"`, Common{}, false},
		{``, Common{}, false},
	}
	for _, c := range cases {
		got, ok := peekHeader([]byte(c.body))
		if got != c.want || ok != c.ok {
			t.Errorf("peekHeader(%.60q) = %+v, %v; want %+v, %v", c.body, got, ok, c.want, c.ok)
		}
	}
}

// The parameters are counted before they are decoded: commas and brackets
// inside strings do not count, and more than MaxParams are refused.
func TestExportParamsLimit(t *testing.T) {
	params := func(n int, p string) string {
		return `{"id":1,"type":6,"key":"k","parameters":[` + strings.TrimSuffix(strings.Repeat(p+",", n), ",") + `]}`
	}
	cases := []struct {
		body string
		n    int   // parameters decoded
		err  error // nil, ErrTooManyParams, or any error (errAny)
	}{
		{`{"id":1,"type":6,"key":"k"}`, 0, nil},
		{`{"id":1,"type":6,"key":"k","parameters":null}`, 0, nil},
		{`{"id":1,"type":6,"key":"k","parameters":[]}`, 0, nil},
		{params(MaxParams, `"a,b"`), MaxParams, nil},
		{params(MaxParams, `"],[\",\""`), MaxParams, nil},
		{params(MaxParams+1, `""`), 0, ErrTooManyParams},
		{params(2_000_000, `""`), 0, ErrTooManyParams},
		{params(3, `1`), 0, errAny},
		{`{"id":1,"type":6,"key":"k","parameters":"x"}`, 0, errAny},
		{`{"id":1,"type":6,"key":"k","parameters":{"a":"b"}}`, 0, errAny},
	}
	for _, c := range cases {
		m, err := Decode([]byte(c.body))
		name := fmt.Sprintf("%.70s", c.body)
		switch {
		case c.err == nil && err != nil:
			t.Errorf("%s: %v", name, err)
		case c.err == nil && len(m.(*ExportRequest).Params) != c.n:
			t.Errorf("%s: %d parameters, want %d", name, len(m.(*ExportRequest).Params), c.n)
		case c.err == errAny && err == nil, c.err == ErrTooManyParams && !errors.Is(err, ErrTooManyParams):
			t.Errorf("%s: error %v, want %v", name, err, c.err)
		}
		var be *BodyError
		if err != nil && (!errors.As(err, &be) || be.ID != 1 || be.Type != TypeExport) {
			t.Errorf("%s: error %v is not a *BodyError of request 1", name, err)
		}
	}
	// The decoded request equals what encoding/json gives without the limit.
	body := `{"id":3,"type":6,"key":"tcp.status","parameters":["a","b c","","x,y"],"timeout":60}`
	m, err := Decode([]byte(body))
	var plain struct {
		Common
		Key     string   `json:"key"`
		Params  []string `json:"parameters"`
		Timeout int      `json:"timeout"`
	}
	json.Unmarshal([]byte(body), &plain)
	r := m.(*ExportRequest)
	if err != nil || r.Common != plain.Common || r.Key != plain.Key || fmt.Sprint(r.Params) != fmt.Sprint(plain.Params) || r.Timeout != 60 {
		t.Errorf("decoded %+v, %v; want %+v", r, err, plain)
	}
}

var errAny = errors.New("any error")
