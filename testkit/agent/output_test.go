package agent

import (
	"errors"
	"testing"
)

func TestParseGetOutput(t *testing.T) {
	tests := []struct {
		name, out, want, wantErr string
		notSupported             bool
	}{
		{name: "+value", out: "17\n", want: "17"},
		{name: "+empty value", out: "\n", want: ""},
		{name: "+value keeps inner newlines", out: "a\nb\n\n", want: "a\nb\n"},
		{name: "+json", out: `{"listen":1}` + "\n", want: `{"listen":1}`},
		{name: "-not supported with reason", out: "ZBX_NOTSUPPORTED: Invalid first parameter: x.\n", wantErr: "Invalid first parameter: x.", notSupported: true},
		{name: "-not supported bare", out: "ZBX_NOTSUPPORTED\n", wantErr: "", notSupported: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseGetOutput(tc.out)
			checkParsed(t, got, err, tc.want, tc.wantErr, tc.notSupported)
		})
	}
}

func TestParseTestOutput(t *testing.T) {
	const key = "tcp.status[estab]"
	pad := "                             " // as the agent pads keys to 45 columns
	tests := []struct {
		name, key, out, want, wantErr string
		notSupported, otherErr        bool
	}{
		{name: "+string", key: key, out: key + pad + "[s|5]\n", want: "5"},
		{name: "+text of the classic agent", key: "k[a]", out: "k[a]" + pad + "[t|hi there]\n", want: "hi there"},
		{name: "+unsigned", key: "k", out: "k [u|0]\n", want: "0"},
		{name: "+brackets inside the value", key: "k", out: "k " + `[s|[{"{#PORT}":"22"}]]` + "\n", want: `[{"{#PORT}":"22"}]`},
		{name: "+long key, one space", key: "k", out: "k [s|]\n", want: ""},
		{name: "-not supported", key: key, out: key + pad + "[m|ZBX_NOTSUPPORTED] [Invalid first parameter: unknown state.]\n",
			wantErr: "Invalid first parameter: unknown state.", notSupported: true},
		{name: "-not supported, reason with brackets", key: "k", out: "k [m|ZBX_NOTSUPPORTED] [Unknown metric k[x]]\n",
			wantErr: "Unknown metric k[x]", notSupported: true},
		{name: "+6.0 log lines before the result", key: "agent.ping",
			out: "2026/11/22 21:55:34.103157 failed to read response for plugin TCPStatus, failed to read type header, EOF\n" +
				"2026/11/22 21:55:34.103253 failed to read response for plugin TCPStatus, failed to read type header, EOF\n" +
				"agent.ping" + pad + "[s|1]\n", want: "1"},
		{name: "+log lines after the result", key: key,
			out: key + pad + "[s|7]\n2026/11/22 21:55:34.103253 failed to read response for plugin TCPStatus\n", want: "7"},
		{name: "+a value line that looks like the key is not taken for the result", key: "k",
			out: "k [s|k\nk]\n", want: "k\nk"},
		{name: "-not supported after log lines", key: key,
			out:     "2026/11/22 21:55:34.103253 x\n" + key + pad + "[m|ZBX_NOTSUPPORTED] [Too many parameters.]\n",
			wantErr: "Too many parameters.", notSupported: true},
		{name: "-other key", key: key, out: "agent.ping [s|1]\n", otherErr: true},
		{name: "-garbage", key: key, out: key + " 5\n", otherErr: true},
		{name: "-unknown type", key: key, out: key + " [x|5]\n", otherErr: true},
		{name: "-empty", key: key, out: "", otherErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseTestOutput(tc.key, tc.out)
			if tc.otherErr {
				var ns *NotSupported
				if err == nil || errors.As(err, &ns) {
					t.Fatalf("parseTestOutput(%q) = %q, %v; want a format error", tc.out, got, err)
				}
				return
			}
			checkParsed(t, got, err, tc.want, tc.wantErr, tc.notSupported)
		})
	}
}

func checkParsed(t *testing.T, got string, err error, want, wantErr string, notSupported bool) {
	t.Helper()
	if !notSupported {
		if err != nil || got != want {
			t.Fatalf("got %q, %v; want %q, nil", got, err, want)
		}
		return
	}
	var ns *NotSupported
	if !errors.As(err, &ns) {
		t.Fatalf("got %q, %v; want *NotSupported %q", got, err, wantErr)
	}
	if ns.Text != wantErr || err.Error() != wantErr {
		t.Fatalf("NotSupported text %q; want %q", ns.Text, wantErr)
	}
}

// TestStartRaceRe: the retried agent 2 6.0 panics are recognised, a plugin
// that really died is not.
func TestStartRaceRe(t *testing.T) {
	tests := []struct {
		name, out string
		race      bool
	}{
		{"+daemon start, SIGCHLD reaped twice", "Press Ctrl+C to exit.\npanic: failed to obtain PID of dead child process: no child processes\n\n" +
			"goroutine 23 [running]:\nmain.listenOnPluginFail(0x0?, {0xc0001a97a7, 0x9})\n", true},
		{"+-t, half-built process handle", "panic: runtime error: invalid memory address or nil pointer dereference\n" +
			"[signal SIGSEGV: segmentation violation code=0x1 addr=0x0 pc=0x992d54]\n\ngoroutine 23 [running]:\n" +
			"zabbix.com/plugins/external.(*Plugin).CheckPid(...)\n\t/build/src/go/plugins/external/plugin.go:144\n" +
			"main.checkExternalExit(0xc000229440?, 0xc00004875c?, {0xc0001a97a7?, 0x0?})\n", true},
		{"-plugin died", "panic: plugin TCPStatus died\n\ngoroutine 23 [running]:\nmain.listenOnPluginFail(0x0?, {0xc0001a97a7, 0x9})\n", false},
		{"-other nil dereference", "panic: runtime error: invalid memory address or nil pointer dereference\n" +
			"goroutine 7 [running]:\nzabbix.com/plugins/external.(*pluginBroker).runReader(...)\n", false},
		{"-clean run", "agent.ping                                    [s|1]\n", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := startRaceRe.MatchString(tc.out); got != tc.race {
				t.Errorf("startRaceRe.MatchString = %v; want %v", got, tc.race)
			}
		})
	}
}
