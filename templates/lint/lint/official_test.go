package lint

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestOfficialMatch: names clash when they can be equal on a host after LLD
// macro expansion, whichever side holds the macro and whatever its name.
func TestOfficialMatch(t *testing.T) {
	var th theirs
	th.add("{#DEVNAME}: Disk average waiting time", "T1")
	th.add("Linux: CPU usage", "T2")
	th.add("Interface {#IFNAME}({#IFALIAS}): Bits received", "T3")
	for _, c := range []struct {
		name string
		want bool
	}{
		{"{#DEVNAME}: Disk average waiting time", true},
		{"{#DISK}: Disk average waiting time", true},     // another macro, same expansions
		{"sda: Disk average waiting time", true},         // a plain name one of theirs expands to
		{"{#X}: CPU usage", true},                        // {#X} can be "Linux"
		{"{#X} CPU usage", true},                         // {#X} can be "Linux:"
		{"{#X}: CPU use", false},                         // different text
		{"Linux: CPU usage", true},                       // exact
		{"{#OS}: CPU usage", true},                       // ours expands to theirs
		{"Disk {#DEVNAME}: Average waiting time", false}, // the renamed form
		{"Interface eth0(uplink): Bits received", true},  // two macros
		{"Interface eth0: Bits received", false},
		{"linux: CPU usage", false}, // case matters, as on the server
	} {
		_, got := th.match(c.name)
		if got != c.want {
			t.Errorf("match(%q) = %v, want %v", c.name, got, c.want)
		}
	}
}

func TestReadOfficial(t *testing.T) {
	o, err := ReadOfficial("testdata/official")
	if err != nil {
		t.Fatal(err)
	}
	if len(o) != 1 || o[0].Zabbix != "6.0.14" || len(o[0].Templates["Linux by Zabbix agent"].GraphPrototypes) != 2 {
		t.Errorf("read %+v", o)
	}
	dir := t.TempDir()
	if _, err := ReadOfficial(dir); err == nil || !strings.Contains(err.Error(), "no official template names") {
		t.Errorf("empty directory: %v", err)
	}
	os.WriteFile(filepath.Join(dir, "zabbix-7.0.json"), []byte(`{"zabbix":"7.0.0","templates":{}}`), 0o644)
	if _, err := ReadOfficial(dir); err == nil {
		t.Error("a file without templates was accepted")
	}
	os.WriteFile(filepath.Join(dir, "zabbix-7.0.json"), []byte(`{"zabbix":`), 0o644)
	if _, err := ReadOfficial(dir); err == nil {
		t.Error("broken JSON was accepted")
	}
}

// TestOfficialClasses: each kind of clash names what it does on a host.
func TestOfficialClasses(t *testing.T) {
	src, lock := readGood(t)
	official := readOfficial(t)
	for _, c := range []struct {
		edit edit
		want string
	}{
		{edit{"<name>{#NAME}: Size and use</name>", "<name>{#FS}: Disk space usage</name>"}, "graph name \"{#FS}: Disk space usage\" is also used by the official template \"Linux by Zabbix agent\" (Zabbix 6.0.14, zabbix-6.0.json): " + refused},
		{edit{"<key>ex.open.pused</key>", "<key>agent.ping</key>"}, "item key \"agent.ping\" is also used by the official template \"Linux by Zabbix agent\""},
		{edit{"<key>ex.discovery</key>", "<key>vfs.dev.discovery</key>"}, "item key \"vfs.dev.discovery\" is also used by the official template \"Linux block devices by Zabbix agent\""},
		{edit{"<name>Ex discovery</name>", "<name>Block devices discovery</name>"}, confused},
		{edit{"<name>{#NAME}: Used</name>", "<name>{#NAME}: Disk read rate</name>"}, confused},
		{edit{"<name>Ex: No data</name>", "<name>Linux: Zabbix agent is not available (for {$AGENT.TIMEOUT})</name>"}, "trigger name"},
		{edit{"<name>Ex::State</name>\n                    <mappings>", "<name>Zabbix agent ping status</name>\n                    <mappings>"}, "value map"},
		{edit{"<macro>{$EX.NAME.MATCHES}</macro>", "<macro>{$VFS.DEV.DEVNAME.MATCHES}</macro>"}, shadowed},
		{edit{"<name>Ex</name>", "<name>System performance</name>"}, "dashboard"},
	} {
		broken := apply(t, src, []edit{c.edit})
		res := CheckWith([]File{{Name: "t.xml", Data: []byte(broken)}}, lock, Options{Official: official})
		found := false
		for _, f := range res.Findings {
			if f.Rule == "official-names" && strings.Contains(f.Msg, c.want) {
				found = true
			}
		}
		if !found {
			t.Errorf("%q: no official-names finding with %q: %v", c.edit.new, c.want, res.Findings)
		}
	}
}
