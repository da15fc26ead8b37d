package faults

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
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
			ch := make(chan reply, 1)
			p.mu.Lock()
			p.pending[90] = ch
			p.mu.Unlock()
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
