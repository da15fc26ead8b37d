package testnet

import (
	"os"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"zabbix-agent2-plugin-tcpstatus/internal/sockets"
)

// TestStates builds every state the package offers for each address kind;
// each builder fails unless ss shows exactly what it promises.
func TestStates(t *testing.T) {
	ns := New(t)
	builders := []struct {
		name string
		make func(host string, n int) (Held, error)
	}{
		{"listen", ns.Listen},
		{"established", ns.Established},
		{"close_wait", ns.CloseWait},
		{"time_wait", ns.TimeWait},
		{"last_ack", ns.LastAck},
		{"syn_recv", ns.SynRecv},
		{"syn_sent", ns.SynSent},
		{"fin_wait1", ns.FinWait1},
		{"orphan_fin_wait2", ns.OrphanFinWait2},
		{"udp", ns.BindUDP},
	}
	for _, host := range []string{"127.0.0.1", "::1", "::ffff:127.0.0.1"} {
		for i, b := range builders {
			n := 2 + i
			h, err := b.make(host, n)
			if err != nil {
				t.Fatalf("%s on %s: %v", b.name, host, err)
			}
			if all := h.All(); all.Total() < uint64(n) {
				t.Errorf("%s on %s: %d sockets, want at least %d", b.name, host, all.Total(), n)
			}
		}
	}
	// Every IPv4-mapped socket is AF_INET6: ss -6 lists them, ss -4 not.
	n4, err := ns.SSCount("-tan4")
	if err != nil {
		t.Fatal(err)
	}
	all, err := ns.SSCount("-tan")
	if err != nil {
		t.Fatal(err)
	}
	n6, err := ns.SSCount("-tan6")
	if err != nil {
		t.Fatal(err)
	}
	if n4+n6 != all || n6 <= n4 {
		t.Errorf("ss: %d IPv4 + %d IPv6 sockets, %d in all; want the IPv4-mapped ones in IPv6", n4, n6, all)
	}
	out, err := ns.SS("-tan6", "src", "[::ffff:127.0.0.1]")
	if err != nil || !strings.Contains(out, "[::ffff:127.0.0.1]") {
		t.Errorf("no IPv4-mapped socket in ss -6: %v\n%s", err, out)
	}
}

// TestDoNamespace checks that Do runs in the namespace: a fresh namespace
// has only lo, and NetDir shows its (empty) tables.
func TestDoNamespace(t *testing.T) {
	ns := New(t)
	var ino, hostIno uint64
	err := ns.Do(func() error {
		var st unix.Stat_t
		if err := unix.Stat("/proc/thread-self/ns/net", &st); err != nil {
			return err
		}
		ino = st.Ino
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var st unix.Stat_t
	if err := unix.Stat("/run/netns/"+ns.Name, &st); err != nil {
		t.Fatal(err)
	}
	if ino != st.Ino {
		t.Errorf("Do ran in namespace inode %d, want %d", ino, st.Ino)
	}
	if err := unix.Stat("/proc/self/ns/net", &st); err != nil {
		t.Fatal(err)
	}
	hostIno = st.Ino
	if hostIno == ino {
		t.Errorf("the test process itself moved into the namespace")
	}
	if err := unix.Stat(ns.NetDir()+"/../ns/net", &st); err != nil {
		t.Fatal(err)
	}
	if st.Ino != ino {
		t.Errorf("NetDir thread in namespace inode %d, want %d", st.Ino, ino)
	}
	out, err := ns.Run("stat", "-L", "-c", "%i", "/proc/self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(string(out)); got != strconv.FormatUint(ino, 10) {
		t.Errorf("Run's command in namespace inode %s, want %d", got, ino)
	}
	b, err := os.ReadFile(ns.NetDir() + "/tcp")
	if err != nil {
		t.Fatal(err)
	}
	if lines := strings.Count(string(b), "\n"); lines != 1 {
		t.Errorf("fresh namespace tcp table has %d lines, want the header only", lines)
	}
	if got := SSState(sockets.TimeWait); got != "time-wait" {
		t.Errorf("SSState(TimeWait) = %q", got)
	}
}

// TestCleanup checks that the namespace and its nft table are gone after
// the test's cleanup ran.
func TestCleanup(t *testing.T) {
	var name string
	t.Run("make", func(t *testing.T) {
		ns := New(t)
		name = ns.Name
		if _, err := ns.LastAck("127.0.0.1", 3); err != nil {
			t.Fatal(err)
		}
	})
	if name == "" {
		t.Skip("namespace not made")
	}
	if _, err := os.Stat("/run/netns/" + name); !os.IsNotExist(err) {
		t.Errorf("namespace %s still exists after cleanup (%v)", name, err)
	}
}
