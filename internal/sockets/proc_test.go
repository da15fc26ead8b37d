package sockets

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fixtureNet is the net directory of a testdata/proc scenario.
func fixtureNet(t testing.TB, scenario string) string {
	t.Helper()
	dir := filepath.Join("..", "..", "testdata", "proc", scenario, "net")
	if _, err := os.Stat(dir); err != nil {
		t.Fatalf("fixture %s: %v", scenario, err)
	}
	return dir
}

// counts builds a Counts from state/count pairs.
func counts(pairs ...any) Counts {
	var c Counts
	for i := 0; i < len(pairs); i += 2 {
		c[pairs[i].(State)] = uint64(pairs[i+1].(int))
	}
	return c
}

// TestProcFixtures counts the fixture trees with exact expectations (the ss
// counts at capture time, see testdata/proc/README.md).
func TestProcFixtures(t *testing.T) {
	mixV4 := counts(Established, 8, SynSent, 2, SynRecv, 1, FinWait1, 3, FinWait2, 6, TimeWait, 6, CloseWait, 6, LastAck, 4, Listen, 8)
	mixV6 := counts(Established, 24, SynSent, 7, SynRecv, 5, FinWait1, 5, FinWait2, 8, TimeWait, 10, CloseWait, 8, LastAck, 3, Listen, 19)
	var mixAll Counts
	for i := range mixAll {
		mixAll[i] = mixV4[i] + mixV6[i]
	}
	tests := []struct {
		name     string
		scenario string
		q        Query
		want     Counts
	}{
		{"+mix all", "netns-mix", Query{}, mixAll},
		{"+mix v4", "netns-mix", Query{Family: FamilyV4}, mixV4},
		{"+mix v6", "netns-mix", Query{Family: FamilyV6}, mixV6},
		{"+mix time_wait", "netns-mix", Query{States: MaskOf(TimeWait)}, counts(TimeWait, 16)},
		{"+mix time_wait+syn_recv", "netns-mix", Query{States: MaskOf(TimeWait, SynRecv)}, counts(TimeWait, 16, SynRecv, 6)},
		{"+mix port 10002 (v4)", "netns-mix", Query{LocalPort: 10002}, counts(CloseWait, 3, Listen, 1)},
		{"+mix port 10003 (v4)", "netns-mix", Query{LocalPort: 10003}, counts(TimeWait, 4, Listen, 1)},
		{"+mix port 10013 (v6)", "netns-mix", Query{LocalPort: 10013}, counts(Established, 4, Listen, 1)},
		{"+mix port 10017 (mapped)", "netns-mix", Query{LocalPort: 10017}, counts(TimeWait, 2, Listen, 1)},
		{"+mix port 10013 v4", "netns-mix", Query{LocalPort: 10013, Family: FamilyV4}, Counts{}},
		{"+mix port 10020 established", "netns-mix", Query{LocalPort: 10020, States: MaskOf(Established)}, counts(Established, 1)},
		{"+mix udp", "netns-mix", Query{Proto: UDP}, counts(Close, 6)},
		{"+mix udp v4", "netns-mix", Query{Proto: UDP, Family: FamilyV4}, counts(Close, 1)},
		{"+mix udp established", "netns-mix", Query{Proto: UDP, States: MaskOf(Established)}, Counts{}},
		{"+mapped all", "ipv4-mapped", Query{}, counts(Established, 12, TimeWait, 4, Listen, 4)},
		{"+mapped v4", "ipv4-mapped", Query{Family: FamilyV4}, Counts{}},
		{"+mapped v6", "ipv4-mapped", Query{Family: FamilyV6}, counts(Established, 12, TimeWait, 4, Listen, 4)},
		{"+mapped udp", "ipv4-mapped", Query{Proto: UDP}, counts(Close, 1)},
		{"+listeners", "listeners", Query{}, counts(Established, 48, Listen, 9)},
		{"+listeners listen", "listeners", Query{States: MaskOf(Listen)}, counts(Listen, 9)},
		{"+ipv6-off all", "ipv6-off", Query{}, mixV4},
		{"+ipv6-off v6", "ipv6-off", Query{Family: FamilyV6}, Counts{}},
		{"+ipv6-off udp", "ipv6-off", Query{Proto: UDP}, counts(Close, 1)},
		{"+empty", "empty", Query{}, Counts{}},
		{"+empty udp", "empty", Query{Proto: UDP}, Counts{}},
		{"+broken v6 only", "broken", Query{Family: FamilyV6}, mixV6},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Count(context.Background(), NewProc(fixtureNet(t, tt.scenario)), tt.q)
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("(-want +got)\n-%v\n+%v", tt.want, got)
			}
		})
	}
}

// TestProcBroken checks the malformed-line error: file, line number, text.
func TestProcBroken(t *testing.T) {
	dir := fixtureNet(t, "broken")
	_, err := Count(context.Background(), NewProc(dir), Query{})
	if err == nil {
		t.Fatal("no error for a malformed line")
	}
	for _, want := range []string{filepath.Join(dir, "tcp") + ":5:", "malformed socket line", `"   3: 0100007F:2711 00000000:0000 0A 000"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not contain %q", err, want)
		}
	}
	if !errors.Is(err, errMalformed) {
		t.Errorf("error %v is not errMalformed", err)
	}
}

// TestProcMissing checks that a missing tcp is an error wrapping
// fs.ErrNotExist, and a missing tcp6/udp6 is none.
func TestProcMissing(t *testing.T) {
	_, err := Count(context.Background(), NewProc(filepath.Join(t.TempDir(), "nope")), Query{})
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing tcp: error %v, want fs.ErrNotExist", err)
	}
	_, err = Count(context.Background(), NewProc(fixtureNet(t, "ipv6-off")), Query{Family: FamilyV6, Proto: UDP})
	if err != nil {
		t.Errorf("missing udp6: %v", err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "tcp6"), []byte(procHeader6), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Count(context.Background(), NewProc(dir), Query{}); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing tcp, present tcp6: error %v, want fs.ErrNotExist", err)
	}
}

// TestProcFields checks address, port, queue and inode decoding on the
// listeners fixture.
func TestProcFields(t *testing.T) {
	var got []string
	err := NewProc(fixtureNet(t, "listeners")).Walk(context.Background(),
		Query{States: MaskOf(Listen), Fields: FieldLocalAddr | FieldRemote | FieldQueues | FieldInode},
		func(s *Socket) {
			got = append(got, fmt.Sprintf("%s %s %s rq=%d wq=%d inode=%v", s.Family, netip.AddrPortFrom(s.LocalAddr, s.LocalPort),
				netip.AddrPortFrom(s.RemoteAddr, s.RemotePort), s.RQueue, s.WQueue, s.Inode != 0))
		})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"4 0.0.0.0:10004 0.0.0.0:0 rq=1 wq=0 inode=true",
		"4 127.0.0.1:10005 0.0.0.0:0 rq=0 wq=0 inode=true",
		"4 127.0.0.1:10005 0.0.0.0:0 rq=0 wq=0 inode=true",
		"4 127.0.0.1:10005 0.0.0.0:0 rq=0 wq=0 inode=true",
		"4 127.0.0.1:10005 0.0.0.0:0 rq=0 wq=0 inode=true",
		"4 127.0.0.1:10000 0.0.0.0:0 rq=5 wq=0 inode=true",
		"4 127.0.0.1:10001 0.0.0.0:0 rq=0 wq=0 inode=true",
		"6 [::]:10003 [::]:0 rq=2 wq=0 inode=true",
		"6 [::1]:10002 [::]:0 rq=16 wq=0 inode=true",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("(-want +got)\n-%s\n+%s", strings.Join(want, "\n-"), strings.Join(got, "\n+"))
	}

	// Orphaned FIN_WAIT2 entries (time-wait substate) have no inode; the
	// FIN_WAIT2 clients that kept their fd have one.
	var fw2 [2]int
	err = NewProc(fixtureNet(t, "netns-mix")).Walk(context.Background(), Query{States: MaskOf(FinWait2), Fields: FieldInode},
		func(s *Socket) {
			if s.Inode == 0 {
				fw2[0]++
			} else {
				fw2[1]++
			}
		})
	if err != nil || fw2 != [2]int{6, 8} {
		t.Errorf("netns-mix fin_wait2 without/with inode: %v (%v), want [6 8]", fw2, err)
	}

	// IPv4-mapped peers keep their ::ffff: form; TIME_WAIT has no inode.
	var mapped, tw int
	err = NewProc(fixtureNet(t, "ipv4-mapped")).Walk(context.Background(), Query{Fields: FieldLocalAddr | FieldRemote | FieldInode},
		func(s *Socket) {
			if s.LocalAddr.Is4In6() && s.LocalAddr.Unmap().IsLoopback() && (s.State == Listen || s.RemoteAddr.Is4In6()) {
				mapped++
			}
			if s.State == TimeWait && s.Inode == 0 {
				tw++
			}
		})
	if err != nil {
		t.Fatal(err)
	}
	if mapped != 20 || tw != 4 {
		t.Errorf("ipv4-mapped: %d mapped sockets, %d TIME_WAIT without inode; want 20 and 4", mapped, tw)
	}
}

const (
	procHeader4 = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
	procHeader6 = "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
	procLine4   = "   0: 0100007F:0050 0200007F:C350 01 0000000A:00000014 00:00000000 00000000     0        0 12345 1 0000000000000000 20 4 30 10 -1\n"
	procLine6   = "   1: 00000000000000000000000001000000:01BB 00000000000000000000000001000000:9C40 06 00000000:00000000 03:00000123 00000000     0        0 0 3 0000000000000000\n"
)

// TestParseTable runs the pure parser over inline tables, valid and not.
func TestParseTable(t *testing.T) {
	long := procHeader4 + "   0: " + strings.Repeat("A", procMaxLine) + "\n"
	tests := []struct {
		name    string
		fam     Family
		in      string
		q       Query
		want    string // visited sockets, or the error's text with "error: "
		wantErr bool
	}{
		{name: "+empty input", fam: FamilyV4, in: "", want: ""},
		{name: "+header only", fam: FamilyV4, in: procHeader4, want: ""},
		{name: "+v4 line", fam: FamilyV4, in: procHeader4 + procLine4, q: Query{Fields: FieldLocalAddr | FieldRemote | FieldQueues | FieldInode},
			want: "4 established 127.0.0.1:80 127.0.0.2:50000 rq=20 wq=10 inode=12345;"},
		{name: "+v4 line no fields", fam: FamilyV4, in: procHeader4 + procLine4, want: "4 established invalid AddrPort invalid AddrPort rq=0 wq=0 inode=0;"},
		{name: "+v6 line without final newline", fam: FamilyV6, in: procHeader6 + strings.TrimSuffix(procLine6, "\n"), q: Query{Fields: FieldLocalAddr | FieldRemote | FieldInode},
			want: "6 time_wait [::1]:443 [::1]:40000 rq=0 wq=0 inode=0;"},
		{name: "+state filtered", fam: FamilyV4, in: procHeader4 + procLine4, q: Query{States: MaskOf(Listen)}, want: ""},
		{name: "+port filtered", fam: FamilyV4, in: procHeader4 + procLine4, q: Query{LocalPort: 81}, want: ""},
		{name: "+port matches", fam: FamilyV4, in: procHeader4 + procLine4, q: Query{LocalPort: 80}, want: "4 established invalid AddrPort invalid AddrPort rq=0 wq=0 inode=0;"},
		{name: "+bad fields not asked", fam: FamilyV4, in: procHeader4 + "   0: 0100007F:0050 0200007F:C350 01 zz 0 0 0 0 x\n", want: "4 established invalid AddrPort invalid AddrPort rq=0 wq=0 inode=0;"},
		{name: "-too few fields", fam: FamilyV4, in: procHeader4 + "   0: 0100007F:0050 0200007F:C350 01 0000000A:00000014 00:00000000\n", wantErr: true, want: "t:2: malformed socket line: too few fields"},
		{name: "-no header", fam: FamilyV4, in: procLine4, wantErr: true, want: "t:1: missing table header"},
		{name: "-v6 line in v4 table", fam: FamilyV4, in: procHeader4 + procLine6, wantErr: true, want: "t:2: malformed socket line: bad address"},
		{name: "-bad state", fam: FamilyV4, in: procHeader4 + strings.Replace(procLine4, " 01 ", " 0G ", 1), wantErr: true, want: "bad state"},
		{name: "-state zero", fam: FamilyV4, in: procHeader4 + strings.Replace(procLine4, " 01 ", " 00 ", 1), wantErr: true, want: "bad state"},
		{name: "-state too big", fam: FamilyV4, in: procHeader4 + strings.Replace(procLine4, " 01 ", " 10 ", 1), wantErr: true, want: "bad state"},
		{name: "-bad port", fam: FamilyV4, in: procHeader4 + strings.Replace(procLine4, ":0050", ":00X0", 1), wantErr: true, want: "bad local port"},
		{name: "-bad address", fam: FamilyV4, in: procHeader4 + strings.Replace(procLine4, "0100007F", "0100007G", 1), q: Query{Fields: FieldLocalAddr}, wantErr: true, want: "bad local address"},
		{name: "-bad queues", fam: FamilyV4, in: procHeader4 + strings.Replace(procLine4, "0000000A:", "0000000A-", 1), q: Query{Fields: FieldQueues}, wantErr: true, want: "bad queues"},
		{name: "-bad inode", fam: FamilyV4, in: procHeader4 + strings.Replace(procLine4, " 12345 ", " 12x45 ", 1), q: Query{Fields: FieldInode}, wantErr: true, want: "bad inode"},
		{name: "-no slot", fam: FamilyV4, in: procHeader4 + "\n", wantErr: true, want: "t:2: malformed socket line: bad slot"},
		{name: "-absurd line", fam: FamilyV4, in: long, wantErr: true, want: "t:2: line longer than 4096 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got strings.Builder
			var s Socket
			err := parseTable(context.Background(), bufio.NewReaderSize(strings.NewReader(tt.in), procBufSize), "t", tt.fam, tt.q, &s, func(s *Socket) {
				fmt.Fprintf(&got, "%s %v %s %s rq=%d wq=%d inode=%d;", s.Family, s.State, netip.AddrPortFrom(s.LocalAddr, s.LocalPort),
					netip.AddrPortFrom(s.RemoteAddr, s.RemotePort), s.RQueue, s.WQueue, s.Inode)
			})
			if tt.wantErr {
				if err == nil || !strings.Contains(err.Error(), tt.want) {
					t.Errorf("error %v, want one containing %q", err, tt.want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.String() != tt.want {
				t.Errorf("(-want +got)\n-%s\n+%s", tt.want, got.String())
			}
		})
	}
}

// TestProcContext checks that a long table stops on a cancelled context.
func TestProcContext(t *testing.T) {
	dir := t.TempDir()
	writeSyntheticTCP(t, dir, 5000)
	ctx, cancel := context.WithCancel(context.Background())
	n := 0
	err := NewProc(dir).Walk(ctx, Query{}, func(*Socket) {
		if n++; n == 10 {
			cancel()
		}
	})
	if !errors.Is(err, context.Canceled) || n >= 5000 {
		t.Errorf("cancelled walk: %v after %d sockets", err, n)
	}
}

// writeSyntheticTCP writes tcp and tcp6 tables of n lines each (IPv4 and
// IPv6 established sockets to port 80) in dir.
func writeSyntheticTCP(t testing.TB, dir string, n int) {
	t.Helper()
	var b4, b6 strings.Builder
	b4.WriteString(procHeader4)
	b6.WriteString(procHeader6)
	for i := range n {
		st := []string{"01", "06", "0A", "08"}[i%4]
		fmt.Fprintf(&b4, "%6d: 0100007F:0050 0200007F:%04X %s 00000000:00000000 00:00000000 00000000     0        0 %d 1 0000000000000000 20 4 30 10 -1                     \n",
			i, 1024+i%60000, st, 100000+i)
		fmt.Fprintf(&b6, "%6d: 00000000000000000000000001000000:0050 00000000000000000000000001000000:%04X %s 00000000:00000000 00:00000000 00000000     0        0 %d 1 0000000000000000 20 4 30 10 -1\n",
			i, 1024+i%60000, st, 200000+i)
	}
	for name, s := range map[string]string{"tcp": b4.String(), "tcp6": b6.String()} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// FuzzParseTable feeds arbitrary tables to the parser: errors are fine,
// panics and visits of impossible states are not.
func FuzzParseTable(f *testing.F) {
	f.Add(procHeader4+procLine4, false)
	f.Add(procHeader6+procLine6, true)
	f.Add(procHeader4+"   0: 0100007F:0050", false)
	f.Add("", true)
	for _, name := range []string{"netns-mix/net/tcp", "netns-mix/net/tcp6", "broken/net/tcp"} {
		if b, err := os.ReadFile(filepath.Join("..", "..", "testdata", "proc", name)); err == nil {
			f.Add(string(b), strings.HasSuffix(name, "6"))
		}
	}
	f.Fuzz(func(t *testing.T, in string, v6 bool) {
		fam := FamilyV4
		if v6 {
			fam = FamilyV6
		}
		var s Socket
		q := Query{Fields: FieldLocalAddr | FieldRemote | FieldQueues | FieldInode}
		_ = parseTable(context.Background(), bufio.NewReaderSize(strings.NewReader(in), 4096), "fuzz", fam, q, &s, func(s *Socket) {
			if s.State == 0 || s.State > MaxState || s.Family != fam {
				t.Fatalf("visited %+v", *s)
			}
		})
	})
}

// TestProcListenersPrefix pins the listener walk's early stop: the kernel
// prints listeners first, so a LISTEN-only walk ends at the first line of
// another state (SYN_RECV excepted) and never reads the rest, here a
// malformed line and a listener that only a whole-table walk sees.
func TestProcListenersPrefix(t *testing.T) {
	listen := "   0: 0100007F:0016 00000000:0000 0A 00000000:00000002 00:00000000 00000000     0        0 111 1 0000000000000000 100 0 0 10 0\n"
	synRecv := "   1: 0100007F:0016 0200007F:C350 03 00000000:00000000 02:00000123 00000000     0        0 0 0 0000000000000000\n"
	late := "   3: 0100007F:0017 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 222 1 0000000000000000 100 0 0 10 0\n"
	dir := t.TempDir()
	tcp := procHeader4 + listen + synRecv + listen + procLine4 + late + "   4: garbage\n"
	if err := os.WriteFile(filepath.Join(dir, "tcp"), []byte(tcp), 0o644); err != nil {
		t.Fatal(err)
	}
	src := NewProc(dir)
	var ports []uint16
	err := src.Walk(context.Background(), Query{States: MaskOf(Listen), Fields: FieldQueues}, func(s *Socket) {
		ports = append(ports, s.LocalPort)
	})
	if err != nil || len(ports) != 2 || ports[0] != 22 || ports[1] != 22 {
		t.Errorf("listener walk: ports %v, %v; want [22 22] and no error", ports, err)
	}
	// Any other query reads the whole table, and meets the broken line.
	if _, err := Count(context.Background(), src, Query{States: MaskOf(Listen, Established)}); !errors.Is(err, errMalformed) {
		t.Errorf("LISTEN+ESTABLISHED walk: error %v, want the malformed line", err)
	}
	if _, err := Count(context.Background(), src, Query{Proto: UDP, States: MaskOf(Listen)}); err == nil {
		t.Errorf("UDP walk: no error for the missing udp table")
	}
}
