package main

import (
	"os"
	"path/filepath"
	"testing"

	"zabbix-agent2-plugin-tcpstatus/internal/kernel"
)

// The fixture procfs reads, through the plugin's own parsers, as the
// values the fixture cycle expects from the server.
func TestWriteFixture(t *testing.T) {
	wd, _ := os.Getwd()
	if err := os.Chdir("../.."); err != nil {
		t.Fatal(err)
	}
	defer os.Chdir(wd)
	dir := t.TempDir()
	if err := writeFixture(dir, orphanOver, memOver, [3]int{memLow, memPressure, memHigh}, 1); err != nil {
		t.Fatal(err)
	}
	nfs, err := kernel.NewNetFS(dir)
	if err != nil {
		t.Fatal(err)
	}
	st, err := nfs.Sockstat()
	if err != nil {
		t.Fatal(err)
	}
	if *st.TCPOrphan != orphanOver || *st.TCPMem != memOver {
		t.Errorf("sockstat orphan %d mem %d, want %d %d", *st.TCPOrphan, *st.TCPMem, orphanOver, memOver)
	}
	ns, err := nfs.Netstat()
	if err != nil {
		t.Fatal(err)
	}
	ext, _ := ns.Section("TcpExt")
	for name, want := range map[string]string{"TCPMemoryPressures": "3", "TCPAbortOnMemory": "20"} {
		if v, _ := ext.Get(name); v != want {
			t.Errorf("TcpExt %s = %q, want %s", name, v, want)
		}
	}
	limits, err := kernel.ReadLimits(dir)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int64{}
	for _, l := range limits {
		got[l.Name] = l.Value
	}
	for name, want := range map[string]int64{"tcp_max_orphans": orphanMax, "tcp_mem_min": memLow, "tcp_mem_pressure": memPressure, "tcp_mem_max": memHigh} {
		if got[name] != want {
			t.Errorf("%s = %d, want %d (%v)", name, got[name], want, got)
		}
	}
	if fi, err := os.Stat(filepath.Join(dir, "sys/net/ipv4")); err != nil || fi.Mode().Perm() != 0o755 {
		t.Errorf("sys/net/ipv4: %v %v", fi, err)
	}
	if _, err := setCounters("TcpExt: A B\nTcpExt: 1 2\n", "TcpExt", map[string]int{"C": 1}); err == nil {
		t.Error("setCounters accepted a counter the section does not have")
	}
}
