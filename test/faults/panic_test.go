package faults

import (
	"context"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"zabbix-agent2-plugin-tcpstatus/internal/agentproto"
	"zabbix-agent2-plugin-tcpstatus/internal/metrics"
	"zabbix-agent2-plugin-tcpstatus/testkit/agentprototest"
	"zabbix-agent2-plugin-tcpstatus/testkit/testutil"
)

// panicky is the plugin's exporter plus keys whose handlers panic.
type panicky struct{ e *metrics.Exporter }

func (h panicky) Metrics() ([]agentproto.Metric, error) {
	return []agentproto.Metric{
		{Key: "tcp.status", Description: "Sockets in a state."},
		{Key: "boom.value", Description: "Panics with a value."},
		{Key: "boom.runtime", Description: "Panics with a runtime error."},
	}, nil
}

func (h panicky) Validate(map[string]string) error { return nil }

func (h panicky) Configure(agentproto.GlobalOptions, map[string]string) time.Duration { return 0 }

func (h panicky) Export(ctx context.Context, key string, params []string) (string, error) {
	switch key {
	case "boom.value":
		panic("handler exploded")
	case "boom.runtime":
		var m map[string]int
		m[key]++ // assignment to a nil map
	}
	return h.e.Export(ctx, key, params)
}

// TestPanicInHandlerOnTheWire: a handler that panics, behind the plugin's
// serve loop on a real socket, gives the item the internal-error text, is
// logged to the agent, and the plugin goes on serving.
func TestPanicInHandlerOnTheWire(t *testing.T) {
	e, err := metrics.New(metrics.DefaultConfig(), metrics.NopLogger{})
	if err != nil {
		t.Fatal(err)
	}
	agentEnd, pluginEnd := unixPair(t)
	fake := agentprototest.New(agentEnd)
	srv := &agentproto.Server{Name: metrics.PluginName, Handler: panicky{e}}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(agentproto.NewConn(pluginEnd)) }()

	send := func(body string) {
		t.Helper()
		if err := fake.Send([]byte(body)); err != nil {
			t.Fatal(err)
		}
	}
	next := func() agentprototest.Frame {
		t.Helper()
		f, err := fake.Next(10 * time.Second)
		if err != nil {
			t.Fatalf("read: %v", err)
		}
		return f
	}
	send(`{"id":1,"type":8,"global_options":{"Timeout":3,"SourceIP":""},"private_options":{"Name":"TCPStatus","Nodes":[]}}`)
	send(`{"id":2,"type":4}`)
	id := uint32(3)
	for round := 0; round < 3; round++ {
		for _, key := range []string{"boom.value", "boom.runtime"} {
			send(`{"id":` + itoa(id) + `,"type":6,"key":"` + key + `"}`)
			r := next()
			_, err := r.Result()
			if r.ID != id || !isItemError(err, internalText) {
				t.Fatalf("%s: response %s, want id %d with %q", key, r.Body, id, internalText)
			}
			id++
		}
		send(`{"id":` + itoa(id) + `,"type":6,"key":"tcp.status","parameters":["nosuchstate"]}`)
		r := next()
		if _, err := r.Result(); r.ID != id || !isItemError(err, "Invalid first parameter") {
			t.Fatalf("after the panics: %s", r.Body)
		}
		id++
	}
	send(`{"id":0,"type":5}`)
	select {
	case err := <-served:
		if err != nil {
			t.Fatalf("Serve after Terminate: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return after Terminate")
	}
	// The log frames sent before Terminate: all read once the plugin's end
	// is closed.
	pluginEnd.Close()
	<-fake.Done()
	var logs []string
	for _, f := range fake.Logs() {
		logs = append(logs, decode(f).Message)
	}
	all := strings.Join(logs, "\n")
	for _, want := range []string{"handler exploded", "assignment to entry in nil map"} {
		if !strings.Contains(all, want) {
			t.Errorf("the agent's log did not get the panic %q:\n%s", want, all)
		}
	}
}

func itoa(n uint32) string { return strconv.FormatUint(uint64(n), 10) }

// unixPair returns the two ends of a connected Unix stream socket pair.
func unixPair(t *testing.T) (a, b *net.UnixConn) {
	t.Helper()
	dir := testutil.WorldDir(t)
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: dir + "/s", Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	done := make(chan *net.UnixConn, 1)
	go func() {
		c, _ := l.AcceptUnix()
		done <- c
	}()
	a, err = net.DialUnix("unix", nil, &net.UnixAddr{Name: dir + "/s", Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	b = <-done
	if b == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { a.Close(); b.Close() })
	return a, b
}
