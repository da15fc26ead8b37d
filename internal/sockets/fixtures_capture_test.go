package sockets_test

import (
	"os"
	"path/filepath"
	"testing"

	"zabbix-agent2-plugin-tcpstatus/testkit/testnet"
)

// TestIntegrationCaptureFixtures rewrites the captured scenarios under
// testdata/proc from sockets made in a namespace. It runs only with
// TCPSTATUS_UPDATE_FIXTURES=1; the expected counts in proc_test.go must then
// be checked against the ss counts it logs.
func TestIntegrationCaptureFixtures(t *testing.T) {
	if os.Getenv("TCPSTATUS_UPDATE_FIXTURES") != "1" {
		t.Skip("set TCPSTATUS_UPDATE_FIXTURES=1 to rewrite testdata/proc")
	}
	capture := func(t *testing.T, ns *testnet.NS, scenario string) {
		dir := filepath.Join("..", "..", "testdata", "proc", scenario, "net")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for _, name := range []string{"tcp", "tcp6", "udp", "udp6"} {
			b, err := os.ReadFile(filepath.Join(ns.NetDir(), name))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		for _, args := range [][]string{{"-tan4"}, {"-tan6"}, {"-uan4"}, {"-uan6"}} {
			c, err := ns.SSCounts(args...)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%s: ss %s: %s total %d", scenario, args[0], nonZero(c), c.Total())
		}
	}
	t.Run("netns-mix", func(t *testing.T) {
		ns := testnet.New(t)
		buildMix(t, ns)
		for i, host := range hosts {
			if _, err := ns.BindUDP(host, i+1); err != nil {
				t.Fatal(err)
			}
			if _, err := ns.TimeWait(host, i+2); err != nil {
				t.Fatal(err)
			}
			if _, err := ns.OrphanFinWait2(host, 3-i); err != nil {
				t.Fatal(err)
			}
		}
		capture(t, ns, "netns-mix")
	})
	t.Run("ipv4-mapped", func(t *testing.T) {
		ns := testnet.New(t)
		for _, host := range []string{"::ffff:127.0.0.1", "::ffff:127.0.0.2"} {
			if _, err := ns.Established(host, 3); err != nil {
				t.Fatal(err)
			}
			if _, err := ns.TimeWait(host, 2); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := ns.BindUDP("::ffff:127.0.0.1", 1); err != nil {
			t.Fatal(err)
		}
		capture(t, ns, "ipv4-mapped")
	})
	t.Run("listeners", func(t *testing.T) {
		ns := testnet.New(t)
		for _, p := range []struct {
			host             string
			backlog, waiting int
		}{{"127.0.0.1", 128, 5}, {"127.0.0.1", 4096, 0}, {"::1", 16, 16}, {"::", 511, 2}, {"0.0.0.0", 64, 1}} {
			if _, err := ns.Pending(p.host, p.backlog, p.waiting); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := ns.Listen("127.0.0.1", 4); err != nil {
			t.Fatal(err)
		}
		capture(t, ns, "listeners")
	})
	t.Run("empty", func(t *testing.T) {
		capture(t, testnet.New(t), "empty")
	})
}
