package main

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
	"zabbix-agent2-plugin-tcpstatus/tools/loadgen/ready"
)

// needRoot skips (or fails under TCPSTATUS_REQUIRE_AGENT=1) when the test
// cannot create namespaces or lacks a tool.
func needRoot(t *testing.T) {
	t.Helper()
	why := ""
	if os.Geteuid() != 0 {
		why = "needs root"
	}
	for _, tool := range []string{"ip", "nft", "ss", "sysctl", "go"} {
		if _, err := exec.LookPath(tool); err != nil && why == "" {
			why = tool + " not found"
		}
	}
	if why == "" {
		return
	}
	if os.Getenv("TCPSTATUS_REQUIRE_AGENT") == "1" {
		t.Fatalf("%s (TCPSTATUS_REQUIRE_AGENT=1)", why)
	}
	t.Skip(why)
}

func TestPlanSharesAndWorkers(t *testing.T) {
	p, err := makePlan(1_000_000, mix{Established: .5, TimeWait: .2, CloseWait: .04, SynRecv: .01, IPv6: .25, Listeners: 16}, 18000)
	if err != nil {
		t.Fatal(err)
	}
	if p.Expected["time_wait"] != 200000 || p.Expected["last_ack"] != 200000 || p.Expected["established"] != 500000 ||
		p.Expected["close_wait"] != 40000 || p.Expected["syn_recv"] != 10000 {
		t.Fatalf("expected counts %v", p.Expected)
	}
	var est, v6 int
	for _, j := range p.Jobs {
		if j.fds() > 18000+100 {
			t.Errorf("worker %d holds %d descriptors", j.ID, j.fds())
		}
		est += 2 * (j.EstPairs[0] + j.EstPairs[1])
		v6 += 2 * j.EstPairs[1]
	}
	if est != 490000 {
		t.Errorf("established pairs hold %d sockets, want 490000", est)
	}
	if r := float64(v6) / float64(est); math.Abs(r-0.25) > 0.001 {
		t.Errorf("IPv6 share %.4f", r)
	}
	if _, err := makePlan(1000, mix{Established: .9, TimeWait: .2}, 18000); err == nil {
		t.Error("shares over 1 accepted")
	}
}

func readSysctl(t *testing.T, key string) string {
	b, err := os.ReadFile("/proc/sys/" + strings.ReplaceAll(key, ".", "/"))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

func ssCount(t *testing.T, ns string, args ...string) int {
	t.Helper()
	out, err := exec.Command("ip", append([]string{"netns", "exec", ns, "ss", "-tanH"}, args...)...).Output()
	if err != nil {
		t.Fatalf("ss %v: %v", args, err)
	}
	return strings.Count(string(out), "\n")
}

// TestLoadgenSmoke builds 2,000 sockets, checks every state with ss, then
// stops the generator with SIGINT and checks that the namespace is gone and
// the global sysctls are as before.
func TestLoadgenSmoke(t *testing.T) {
	needRoot(t)
	dir := t.TempDir()
	bin := filepath.Join(dir, "loadgen")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	globals := []string{"net.ipv4.tcp_max_orphans", "net.core.netdev_max_backlog"}
	before := map[string]string{}
	for _, k := range globals {
		before[k] = readSysctl(t, k)
	}
	ns := fmt.Sprintf("lgtest-%d", os.Getpid())
	readyFile := filepath.Join(dir, "ready.json")
	cmd := exec.Command(bin, "-n", "2000", "-hold", "90s", "-netns", ns, "-ready-file", readyFile)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var waitErr error
	exited := make(chan struct{})
	go func() { waitErr = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGINT)
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			cmd.Process.Kill()
		}
		if _, err := os.Stat("/run/netns/" + ns); err == nil {
			exec.Command("ip", "netns", "del", ns).Run()
		}
	})
	deadline := time.Now().Add(60 * time.Second)
	var rep ready.Report
	for {
		b, err := os.ReadFile(readyFile)
		if err == nil {
			if err := json.Unmarshal(b, &rep); err != nil {
				t.Fatalf("ready file: %v", err)
			}
			break
		}
		select {
		case <-exited:
			t.Fatalf("loadgen exited before ready: %v", waitErr)
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatal("loadgen not ready after 60s")
		}
	}
	if rep.NetNS != ns || len(rep.Mismatch) > 0 {
		t.Fatalf("ready report: netns %q, mismatch %v", rep.NetNS, rep.Mismatch)
	}
	want := map[string]int{"established": 1000, "time-wait": 400, "last-ack": 400, "close-wait": 80,
		"fin-wait-2": 80, "syn-recv": 20, "listening": 2 * (3 + 16)}
	for state, n := range want {
		if got := ssCount(t, ns, "state", state); got != n {
			t.Errorf("ss state %s: %d sockets, want %d", state, got, n)
		}
	}
	all := ssCount(t, ns)
	if all != rep.Expected["total"] {
		t.Errorf("ss counts %d sockets, expected %d", all, rep.Expected["total"])
	}
	if v6 := ssCount(t, ns, "-6"); math.Abs(float64(v6)/float64(all)-0.25) > 0.02 {
		t.Errorf("IPv6 share %d of %d", v6, all)
	}
	if got := ssCount(t, ns, "sport", "= :22000"); uint64(got) != rep.BusyPortSockets || got == 0 {
		t.Errorf("ss sport :22000 counts %d, loadgen reported %d", got, rep.BusyPortSockets)
	}

	cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-exited:
		if waitErr != nil {
			t.Errorf("loadgen exit after SIGINT: %v", waitErr)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("loadgen did not exit 30s after SIGINT")
	}
	if _, err := os.Stat("/run/netns/" + ns); err == nil {
		t.Errorf("netns %s left behind", ns)
	}
	for _, k := range globals {
		if got := readSysctl(t, k); got != before[k] {
			t.Errorf("%s is %s after the run, was %s", k, got, before[k])
		}
	}
}
