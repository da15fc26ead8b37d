// Package testnet is the testing.TB layer over testkit/netns: a private
// network namespace for one test, removed at its cleanup, with TCP sockets
// held in chosen states and ss(8) as an independent oracle.
//
//	ns := testnet.New(t) // skips unless root with ip, nft and ss
//	h, err := ns.TimeWait("127.0.0.1", 10)
//	n, err := ns.SSCount("-tan", "state", "time-wait", "sport", "=", ":"+strconv.Itoa(int(h.Port)))
//	err = ns.Do(func() error { ... }) // on a thread inside the namespace
//
// A test calling New is skipped when not run as root or when ip, nft or ss is
// missing, unless TCPSTATUS_REQUIRE_AGENT=1, which makes it fail instead.
package testnet

import (
	"os"
	"strings"
	"testing"

	"zabbix-agent2-plugin-tcpstatus/internal/sockets"
	"zabbix-agent2-plugin-tcpstatus/testkit/agent"
	"zabbix-agent2-plugin-tcpstatus/testkit/netns"
)

// Names of testkit/netns.
type (
	NS   = netns.NS
	Held = netns.Held
)

// SSState is ss's filter name of a state ("time-wait", "listening", ...).
func SSState(s sockets.State) string { return netns.SSState(s) }

// Require skips t (or fails it when TCPSTATUS_REQUIRE_AGENT=1) unless the
// process runs as root and every named tool is in PATH.
func Require(t testing.TB, tools ...string) {
	t.Helper()
	skipOrFail(t, netns.Missing(tools...))
}

func skipOrFail(t testing.TB, missing []string) {
	t.Helper()
	if len(missing) == 0 {
		return
	}
	if os.Getenv(agent.EnvRequire) == "1" {
		t.Fatalf("missing %s (%s=1 forbids skipping)", strings.Join(missing, ", "), agent.EnvRequire)
	}
	t.Skipf("missing %s", strings.Join(missing, ", "))
}

// New opens a namespace (netns.Open) for t and destroys it at t's cleanup,
// failing t if anything is left.
func New(t testing.TB) *NS {
	t.Helper()
	skipOrFail(t, netns.MissingForOpen())
	ns, err := netns.Open()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := ns.Destroy(); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	return ns
}
