package agentproto

import (
	"bytes"
	"errors"
	"io"
	"runtime"
	"strings"
	"testing"
	"testing/iotest"
)

func TestReadFrame(t *testing.T) {
	big := strings.Repeat("x", 100_000) // above directReadSize: allocated after 64 KiB
	cases := []struct {
		name string
		in   []byte
		want string
		err  error
	}{
		{"+terminate 6.0", []byte("\x01\x00\x00\x00\x11\x00\x00\x00{\"id\":0,\"type\":5}"), `{"id":0,"type":5}`, nil},
		{"+empty body", rawFrame(1, ""), "", nil},
		{"+large body", rawFrame(1, big), big, nil},
		{"-clean EOF", nil, "", io.EOF},
		{"-truncated header", []byte{1, 0, 0, 0, 5}, "", io.ErrUnexpectedEOF},
		{"-truncated body", rawFrame(1, `{"id":1}`)[:12], "", io.ErrUnexpectedEOF},
		{"-truncated large body", rawFrame(1, big)[:50_000], "", io.ErrUnexpectedEOF},
		{"-type 0", rawFrame(0, "{}"), "", ErrPayloadType},
		{"-type big-endian 1", append([]byte{0, 0, 0, 1}, rawFrame(1, "{}")[4:]...), "", ErrPayloadType},
		{"-ZBXD header", []byte("ZBXD\x01\x05\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00hello"), "", ErrPayloadType},
		{"-length over cap", []byte{1, 0, 0, 0, 1, 0, 0, 1}, "", ErrFrameTooLarge},
		{"-length 4 GiB", []byte{1, 0, 0, 0, 0xff, 0xff, 0xff, 0xff}, "", ErrFrameTooLarge},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			in := c.in
			// small frames through a reader returning one byte at a time:
			// reads must loop
			var r io.Reader = bytes.NewReader(in)
			if len(in) < 4096 {
				r = iotest.OneByteReader(r)
			}
			got, err := ReadFrame(r)
			if c.err != nil {
				if !errors.Is(err, c.err) {
					t.Fatalf("error %v, want %v", err, c.err)
				}
				if c.err == io.EOF && err != io.EOF {
					t.Fatalf("clean EOF must be io.EOF itself, got %v", err)
				}
				return
			}
			if err != nil || string(got) != c.want {
				t.Fatalf("got %d bytes, %v; want %d bytes", len(got), err, len(c.want))
			}
		})
	}
}

func TestReadFrameAtCap(t *testing.T) {
	if testing.Short() {
		t.Skip("reads a 16 MiB frame (slow under -race); runs without -short")
	}
	header := []byte{1, 0, 0, 0, 0, 0, 0, 1} // exactly MaxReadSize
	r := io.MultiReader(bytes.NewReader(header), io.LimitReader(zeros{}, MaxReadSize), strings.NewReader("rest"))
	got, err := ReadFrame(r)
	if err != nil || len(got) != MaxReadSize || bytes.Count(got, []byte{0}) != MaxReadSize {
		t.Fatalf("got %d bytes, %v; want %d zero bytes", len(got), err, MaxReadSize)
	}
	if rest, _ := io.ReadAll(r); string(rest) != "rest" {
		t.Errorf("read past the frame: %q left", rest)
	}
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }

// A header announcing a huge body that never comes costs no more memory
// than the bytes that did arrive.
func TestReadFrameNoBigAllocation(t *testing.T) {
	cases := map[string][]byte{
		"over the cap":          {1, 0, 0, 0, 0xff, 0xff, 0xff, 0x7f},
		"16 MiB promised, 10 B": append([]byte{1, 0, 0, 0, 0, 0, 0, 1}, "0123456789"...),
	}
	for name, in := range cases {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		for range 10 {
			if _, err := ReadFrame(bytes.NewReader(in)); err == nil {
				t.Fatalf("%s: no error", name)
			}
		}
		runtime.ReadMemStats(&after)
		if n := after.TotalAlloc - before.TotalAlloc; n > 1<<20 {
			t.Errorf("%s: 10 reads allocated %d bytes", name, n)
		}
	}
}

// allocated returns the bytes f allocates.
func allocated(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// A frame above MaxReadSize, or of another payload type, is read to its end
// in small chunks and discarded: the error is a *FrameError with the head of
// the body, the next frame reads normally, and the memory used is the head
// and a small buffer, whatever the length.
func TestReadFrameDiscards(t *testing.T) {
	body := `{"id":7,"type":6,"key":"` + strings.Repeat("k", 32<<20) + `"}`
	cases := []struct {
		name  string
		frame []byte
		err   error
	}{
		{"above MaxReadSize", rawFrame(1, body), ErrFrameTooLarge},
		{"MaxReadSize+1", rawFrame(1, body[:MaxReadSize+1]), ErrFrameTooLarge},
		{"payload type 2", rawFrame(2, body[:100]), ErrPayloadType},
		{"payload type 0, empty", rawFrame(0, ""), ErrPayloadType},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := io.MultiReader(bytes.NewReader(c.frame), bytes.NewReader(rawFrame(1, `{"id":8}`)))
			var err error
			n := allocated(func() { _, err = ReadFrame(r) })
			var fe *FrameError
			if !errors.As(err, &fe) || !errors.Is(err, c.err) {
				t.Fatalf("got %v, want a *FrameError for %v", err, c.err)
			}
			size := len(c.frame) - HeaderSize
			if fe.Length != uint32(size) || string(fe.Head) != body[:min(size, headSize)] {
				t.Errorf("length %d, head %d bytes %.20q; want %d, %d bytes", fe.Length, len(fe.Head), fe.Head, size, min(size, headSize))
			}
			if n > 64<<10 {
				t.Errorf("discarding %d bytes allocated %d bytes", size, n)
			}
			next, err := ReadFrame(r)
			if err != nil || string(next) != `{"id":8}` {
				t.Fatalf("next frame: %q, %v", next, err)
			}
		})
	}
}

// A body above the direct-read size costs its size and the first 64 KiB in
// allocations, and is returned at its exact length.
func TestReadFrameGrowth(t *testing.T) {
	for _, size := range []int{directReadSize + 1, 1 << 20, 8<<20 + 1, 10_000_000, MaxReadSize} {
		frame := rawFrame(1, strings.Repeat("x", size))
		var body []byte
		var err error
		n := allocated(func() { body, err = ReadFrame(bytes.NewReader(frame)) })
		if err != nil || len(body) != size || cap(body) != size {
			t.Fatalf("%d bytes: got len %d cap %d, %v", size, len(body), cap(body), err)
		}
		if n > uint64(size+directReadSize+16<<10) { // + page rounding
			t.Errorf("%d bytes: allocated %d (%.1fx)", size, n, float64(n)/float64(size))
		}
		t.Logf("%d-byte body: %.2fx its size allocated", size, float64(n)/float64(size))
	}
}

func TestWriteFrame(t *testing.T) {
	var w countingWriter
	if err := WriteFrame(&w, []byte(`{"id":0,"type":5}`)); err != nil {
		t.Fatal(err)
	}
	if w.writes != 1 || w.String() != "\x01\x00\x00\x00\x11\x00\x00\x00{\"id\":0,\"type\":5}" {
		t.Errorf("%d writes of %q", w.writes, w.String())
	}
	if err := WriteFrame(errWriter{}, nil); err == nil || !errors.Is(err, io.ErrClosedPipe) {
		t.Errorf("write error not returned: %v", err)
	}
}

// Values keep <, > and & as they are (json.Marshal would escape them).
func TestEncodeNoHTMLEscape(t *testing.T) {
	v := `[{"{#PORT}":"22"}] <state> & more`
	b, err := Encode(&ExportResponse{Common: Common{ID: 9, Type: TypeExportResponse}, Value: &v})
	if err != nil {
		t.Fatal(err)
	}
	want := `{"id":9,"type":7,"value":"[{\"{#PORT}\":\"22\"}] <state> & more"}`
	if string(b) != want {
		t.Errorf("got %s, want %s", b, want)
	}
}

type countingWriter struct {
	bytes.Buffer
	writes int
}

func (w *countingWriter) Write(p []byte) (int, error) { w.writes++; return w.Buffer.Write(p) }

type errWriter struct{}

func (errWriter) Write([]byte) (int, error) { return 0, io.ErrClosedPipe }

// Concurrent senders never interleave frames.
func TestConnSendAtomic(t *testing.T) {
	agent, pluginEnd := logAgent(t)
	c := NewConn(pluginEnd)
	const senders, each = 8, 50
	for s := range senders {
		go func() {
			for i := range each {
				c.Logger().Infof("%s", strings.Repeat(string(rune('a'+s)), 100+i*37))
			}
		}()
	}
	for i := range senders * each {
		f := nthLog(t, agent, i+1)
		m, err := Decode(f[8:])
		if err != nil {
			t.Fatalf("interleaved frame: %v", err)
		}
		msg := m.(*LogRequest).Message
		if strings.Trim(msg, msg[:1]) != "" {
			t.Fatalf("mixed message %q", msg)
		}
	}
}
