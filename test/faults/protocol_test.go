package faults

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"zabbix-agent2-plugin-tcpstatus/testkit/agenttest"
)

// memKiB returns VmRSS and VmHWM (peak RSS) of pid in KiB.
func memKiB(t testing.TB, pid int) (rss, hwm int) {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		switch f[0] {
		case "VmRSS:":
			rss, _ = strconv.Atoi(f[1])
		case "VmHWM:":
			hwm, _ = strconv.Atoi(f[1])
		}
	}
	return rss, hwm
}

// TestPluginFrameMemory sends one large Export request to a fresh plugin
// process and compares its peak resident memory (VmHWM) before and after
// the answer: a request costs at most a small multiple of its size (the
// frame read in doubling buffers, then decoded once), and one above the
// 16 MiB frame limit costs nothing but a small buffer, whatever its size.
// Before the parameter count was checked first, 2 million empty
// parameters (a 6 MB frame) took the plugin from 4.6 to 138 MB.
func TestPluginFrameMemory(t *testing.T) {
	const mib = 1 << 20
	cases := []struct {
		name   string
		body   func() []byte
		answer string
		limit  float64 // peak growth, in times the frame size
		slack  int     // KiB allowed on top
	}{
		{"2 million empty parameters", func() []byte {
			return []byte(`{"id":90,"type":6,"key":"tcp.status","parameters":[""` + strings.Repeat(`,""`, 2_000_000-1) + `]}`)
		}, "Too many parameters.", 3, 4096},
		{"1024 parameters of 15 KiB", func() []byte {
			p := `"` + strings.Repeat("p", 15<<10) + `"`
			return []byte(`{"id":90,"type":6,"key":"tcp.status","parameters":[` + p + strings.Repeat(","+p, 1023) + `]}`)
		}, "Too many parameters.", 4, 4096},
		// A key the plugin does not have: what is measured is the frame
		// and its decoding, not what a key's handler does with the value.
		{"one parameter of 16 MiB less 100 bytes", func() []byte {
			return []byte(`{"id":90,"type":6,"key":"no.such.key","parameters":["` + strings.Repeat("p", 16*mib-100) + `"]}`)
		}, "Unsupported metric.", 3, 4096},
		{"a 64 MiB key, above the frame limit", func() []byte {
			return []byte(`{"id":90,"type":6,"key":"tcp.status[` + strings.Repeat("k", 64*mib) + `]"}`)
		}, fmt.Sprintf("Request too large: %d bytes, the limit is 16777216.", 64*mib+len(`{"id":90,"type":6,"key":"tcp.status[]"}`)), 0, 4096},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			body := c.body()
			p := startPlugin(t, pluginOpts{})
			p.configure(map[string]string{"Timeout": "30"})
			if err := p.probe(t); err != nil {
				t.Fatal(err)
			}
			_, hwm0 := memKiB(t, p.pid())
			ch := p.fake.Await(90)
			if err := p.send(frame(1, body)); err != nil {
				t.Fatal(err)
			}
			if _, err := p.await(ch, 30*time.Second, "tcp.status"); !isItemError(err, c.answer) {
				t.Fatalf("answer %v, want an item error with %q", err, c.answer)
			}
			if err := p.probe(t); err != nil {
				t.Fatal(err)
			}
			rss1, hwm1 := memKiB(t, p.pid())
			grew := float64(hwm1-hwm0) * 1024 / float64(len(body))
			t.Logf("frame %d bytes: peak RSS %d -> %d KiB (+%.2fx the frame), RSS after %d KiB", len(body), hwm0, hwm1, grew, rss1)
			if limit := int(c.limit*float64(len(body))/1024) + c.slack; hwm1-hwm0 > limit {
				t.Errorf("peak RSS grew by %d KiB, limit %d KiB", hwm1-hwm0, limit)
			}
		})
	}
}

// TestAgentOversizedKey sends passive checks whose key is 16 MiB or more
// over raw ZBXD from loopback, as any host in the agent's Server= list can:
// the agent forwards the key to the plugin unchanged, in a frame above the
// plugin's 16 MiB limit. The plugin must answer with an error, and both
// the agent and the plugin go on serving (before, the plugin exited, and
// agent 6.0 then panicked and 7.0 panicked at the next request).
func TestAgentOversizedKey(t *testing.T) {
	versions(t, func(t *testing.T, v agenttest.Version) {
		a := agenttest.Start(t, v)
		if _, err := a.Get("tcp.status[listen]"); err != nil {
			t.Fatal(err)
		}
		pid := operational(t, a)
		for _, size := range []int{16 << 20, 20 << 20} {
			key := "tcp.status[" + strings.Repeat("x", size) + "]"
			start := time.Now()
			_, err := passive(a.Port(), key, 0)
			t.Logf("%d-byte key: %v after %v", len(key), clipErr(err), time.Since(start).Round(time.Millisecond))
			if !notSupported(err, "Request too large: ") {
				t.Fatalf("%d-byte key: got %v, want ZBX_NOTSUPPORTED with \"Request too large\"", len(key), clipErr(err))
			}
			if err := a.Alive(); err != nil {
				t.Fatalf("after a %d-byte key: %v", len(key), err)
			}
			got, err := a.Get("tcp.status[listen]")
			if err != nil {
				t.Fatalf("tcp.status[listen] after a %d-byte key: %v", len(key), err)
			}
			if n := atoi(t, "tcp.status[listen]", got); n < 1 {
				t.Fatalf("tcp.status[listen] = %d; the agent itself listens", n)
			}
		}
		// Just below the limit the request reaches the key's handler.
		key := "tcp.status[" + strings.Repeat("x", 16_700_000) + "]"
		if _, err := passive(a.Port(), key, 0); !notSupported(err, "Invalid first parameter") {
			t.Fatalf("%d-byte key: got %v, want ZBX_NOTSUPPORTED with \"Invalid first parameter\"", len(key), clipErr(err))
		}
		if got := operational(t, a); got != pid {
			t.Fatalf("plugin process changed from %d to %d", pid, got)
		}
		if log := a.Log(); !strings.Contains(log, "answered export request") || !strings.Contains(log, "discarded a frame of") {
			t.Errorf("no warning about the discarded request in the agent's log:\n%s", tail(log, 20))
		}
	})
}

// clipErr shortens an error holding a long key for the test log.
func clipErr(err error) string {
	if err == nil {
		return "<nil>"
	}
	s := err.Error()
	if len(s) > 300 {
		return s[:300] + "..."
	}
	return s
}
