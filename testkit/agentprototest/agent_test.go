package agentprototest

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// The fake agent sorts what the plugin sends: logs apart, awaited responses
// to their channel, the rest in order; it counts answers per id.
func TestFramesSorted(t *testing.T) {
	a, plugin := Pipe()
	defer a.Close()
	ch := a.Await(2)
	go func() {
		for _, body := range []string{
			`{"id":0,"type":1,"severity":3,"message":"hello"}`,
			`{"id":1,"type":3,"name":"TCPStatus"}`,
			`{"id":2,"type":7,"value":"42"}`,
			`{"id":3,"type":7,"error":"Invalid first parameter: x."}`,
		} {
			plugin.Write(AppendFrame(nil, 1, []byte(body)))
		}
	}()
	if f, err := a.Next(5 * time.Second); err != nil || f.ID != 1 || f.Type != TypeRegisterResp {
		t.Fatalf("first unclaimed frame %+v, %v", f, err)
	}
	if v, err := (<-ch).Result(); v != "42" || err != nil {
		t.Errorf("awaited result %q, %v", v, err)
	}
	f, err := a.Next(5 * time.Second)
	var ie *ItemError
	if _, rerr := f.Result(); err != nil || !errors.As(rerr, &ie) || ie.Text != "Invalid first parameter: x." {
		t.Errorf("item error frame %s: %v, %v", f.Body, err, rerr)
	}
	if logs, err := a.WaitLogs(1, time.Second); err != nil || !strings.Contains(string(logs[0].Body), "hello") {
		t.Errorf("logs %v, %v", logs, err)
	}
	if n := a.Answered(); n[1] != 1 || n[2] != 1 || n[3] != 1 || n[0] != 0 {
		t.Errorf("answered %v", n)
	}
	if _, err := a.Next(50 * time.Millisecond); !errors.Is(err, ErrNoFrame) {
		t.Errorf("empty queue: %v", err)
	}
}

// A frame that breaks the protocol ends the reading and is reported.
func TestProtocolViolations(t *testing.T) {
	for name, raw := range map[string][]byte{
		"payload type": AppendFrame(nil, 2, []byte(`{}`)),
		"not JSON":     AppendFrame(nil, 1, []byte(`nope`)),
		"log with id":  AppendFrame(nil, 1, []byte(`{"id":5,"type":1}`)),
		"huge":         {1, 0, 0, 0, 0xff, 0xff, 0xff, 0xff},
	} {
		a, plugin := Pipe()
		go plugin.Write(raw)
		select {
		case <-a.Done():
		case <-time.After(5 * time.Second):
			t.Fatalf("%s: still reading", name)
		}
		if a.Err() == nil {
			t.Errorf("%s: not reported", name)
		}
		if _, err := a.Next(time.Second); err == nil {
			t.Errorf("%s: Next after the violation gave a frame", name)
		}
		a.Close()
		plugin.Close()
	}
	// A plugin that hangs up is no violation.
	a, plugin := Pipe()
	plugin.Close()
	<-a.Done()
	if err := a.Err(); err != nil {
		t.Errorf("hang-up reported as %v", err)
	}
}
