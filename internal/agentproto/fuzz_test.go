package agentproto

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// addFrameSeeds adds every golden and captured frame as a seed.
func addFrameSeeds(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join(framesDir, "*.bin"))
	streams, _ := filepath.Glob(filepath.Join(framesDir, "agent-*", "*.bin"))
	files = append(files, streams...)
	if len(files) == 0 {
		f.Fatalf("no frames in %s", framesDir)
	}
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
}

// FuzzReadFrame: whatever the bytes, ReadFrame does not panic; a frame it
// accepts re-encodes to the same bytes and reads back to the same body; a
// body that decodes as a message re-encodes to a stable form of the same
// type. Seeds: testdata/frames and testdata/fuzz/FuzzReadFrame.
func FuzzReadFrame(f *testing.F) {
	addFrameSeeds(f)
	f.Add(rawFrame(1, `{"id":3,"type":6,"key":"tcp.status","parameters":["a","b c","","x,y"],"timeout":60}`))
	f.Add(rawFrame(1, `{"id":1,"type":8,"global_options":{"Timeout":3,"SourceIP":""},"private_options":`+protoDocTree+`}`))
	f.Add([]byte{1, 0, 0, 0, 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, data []byte) {
		body, err := ReadFrame(bytes.NewReader(data))
		if err != nil {
			return
		}
		frame, err := AppendFrame(nil, body)
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		if !bytes.HasPrefix(data, frame) {
			t.Fatalf("re-encoded frame %q is not the input's prefix %q", frame, data)
		}
		body2, err := ReadFrame(bytes.NewReader(frame))
		if err != nil || !bytes.Equal(body, body2) {
			t.Fatalf("read back: %q, %v; want %q", body2, err, body)
		}

		m, err := Decode(body)
		if err != nil {
			return
		}
		b1, err := Encode(m)
		if err != nil {
			t.Fatalf("encode %T: %v", m, err)
		}
		m2, err := Decode(b1)
		if err != nil {
			t.Fatalf("decode re-encoded %s: %v", b1, err)
		}
		if reflect.TypeOf(m) != reflect.TypeOf(m2) || m.Header() != m2.Header() {
			t.Fatalf("%T %+v became %T %+v", m, m.Header(), m2, m2.Header())
		}
		b2, err := Encode(m2)
		if err != nil || !bytes.Equal(b1, b2) {
			t.Fatalf("unstable encoding:\n%s\n%s", b1, b2)
		}
	})
}

// FuzzPeekHeader: whatever the bytes, peekHeader does not panic, agrees
// with encoding/json whenever that decodes the header, and reads prefixes
// of the body (the head of a discarded frame) without a panic. The
// parameter limit never changes what an Export request decodes to, except
// refusing more than MaxParams.
func FuzzPeekHeader(f *testing.F) {
	addFrameSeeds(f)
	for _, s := range []string{`{"id":"42","type":6}`, `{"id":-44,"type":6}`, `{"id":45.5}`, `{"id":4294967296}`,
		`{"id":1,"type":6} x`, `{"ID":2,"tYpe":9}`, `{"\u0069d":3}`, `{"x":[{"id":1}],"id":4}`, `{"id":5,"type":6,"parameters":["a,b","]"]}`} {
		f.Add(rawFrame(1, s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		body := data
		if len(data) >= HeaderSize {
			body = data[HeaderSize:]
		}
		got, ok := peekHeader(body)
		var want Common
		if json.Unmarshal(body, &want) == nil {
			if !ok || got != want {
				t.Fatalf("peekHeader(%q) = %+v, %v; encoding/json %+v", body, got, ok, want)
			}
		}
		// Every prefix (the head of a discarded frame) peeks without a
		// panic; one cut right after the whole body's last member still
		// sees the same header.
		for i := range min(len(body), 512) {
			peekHeader(body[:i])
		}
		if ok {
			if i := bytes.LastIndexByte(body, '}'); i > 0 {
				if h, ok2 := peekHeader(append(slices.Clip(body[:i]), ',')); ok2 && json.Valid(body) && h != got {
					t.Fatalf("%q cut before its last brace: %+v, whole %+v", body, h, got)
				}
			}
		}
		var limited ExportRequest
		var plain struct {
			Common
			Key     string   `json:"key"`
			Params  []string `json:"parameters,omitempty"`
			Timeout int      `json:"timeout,omitempty"`
		}
		errL, errP := json.Unmarshal(body, &limited), json.Unmarshal(body, &plain)
		if errP == nil && len(plain.Params) <= MaxParams {
			if errL != nil || limited.Common != plain.Common || limited.Key != plain.Key ||
				!slices.Equal(limited.Params, plain.Params) || (limited.Params == nil) != (plain.Params == nil) || limited.Timeout != plain.Timeout {
				t.Fatalf("%q: limited decode %+v, %v; plain %+v", body, limited, errL, plain)
			}
		}
		if errP == nil && len(plain.Params) > MaxParams && !errors.Is(errL, ErrTooManyParams) {
			t.Fatalf("%q: %d parameters decoded: %v", body, len(plain.Params), errL)
		}
	})
}

// FuzzConfigTree: whatever the JSON, Options does not panic; the tree
// survives decode → encode → decode with the same options; the options,
// built back into a tree the way the agent builds it, give the same map.
// Seeds: testdata/fuzz/FuzzConfigTree.
func FuzzConfigTree(f *testing.F) {
	f.Add([]byte(protoDocTree))
	f.Add([]byte(`null`))
	f.Add([]byte(`{"Name":"X","Nodes":[{"Name":"Timeout","Line":2,"Nodes":[{"Value":"NQ==","Line":2},{"Value":"Ng==","Line":7}]}]}`))
	f.Add([]byte(`{"Name":"X","Nodes":[{"Name":"A","Nodes":[{"Value":"MQ==","Line":2},{"Name":"B","Nodes":[{"Value":"Mg==","Line":3}]}]}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var n *ConfigNode
		if json.Unmarshal(data, &n) != nil {
			return
		}
		opts, err := n.Options()
		enc, merr := json.Marshal(n)
		if merr != nil {
			t.Fatalf("encode tree: %v", merr)
		}
		var n2 *ConfigNode
		if err := json.Unmarshal(enc, &n2); err != nil {
			t.Fatalf("decode re-encoded tree %s: %v", enc, err)
		}
		opts2, err2 := n2.Options()
		if (err == nil) != (err2 == nil) || !maps.Equal(opts, opts2) {
			t.Fatalf("round trip changed options: %v %v → %v %v", opts, err, opts2, err2)
		}
		if err != nil {
			return
		}
		for k := range opts {
			if k == "" || k == SystemNode || strings.HasPrefix(k, SystemNode+".") {
				t.Fatalf("option name %q", k)
			}
			if slices.Contains(strings.Split(k, "."), "") {
				return // a node name with a dot in it: not rebuildable
			}
		}
		rebuilt, err := buildTree("X", opts).Options()
		if err != nil || !maps.Equal(rebuilt, opts) {
			t.Fatalf("rebuilt tree gives %v, %v; want %v", rebuilt, err, opts)
		}
	})
}

// buildTree makes the tree the agent would send for Plugins.<root>.<k>=<v>.
func buildTree(root string, opts map[string]string) *ConfigNode {
	top := &ConfigNode{Name: root, Line: 1}
	for line, k := range optionNames(opts) {
		n := top
		for _, part := range strings.Split(k, ".") {
			i := slices.IndexFunc(n.Nodes, func(c ConfigNode) bool { return c.Value == nil && c.Name == part })
			if i < 0 {
				n.Nodes = append(n.Nodes, ConfigNode{Name: part, Line: line + 2})
				i = len(n.Nodes) - 1
			}
			n = &n.Nodes[i]
		}
		v := base64.StdEncoding.EncodeToString([]byte(opts[k]))
		n.Nodes = append(n.Nodes, ConfigNode{Value: &v, Line: line + 2})
	}
	return top
}
