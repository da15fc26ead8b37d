package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"zabbix-agent2-plugin-tcpstatus/testkit/agenttest"
)

// keyGrammarFile holds item keys with the parameters the real agents hand
// on for them (see TestKeyGrammarAgents).
var keyGrammarFile = filepath.Join("testdata", "keys.json")

var updateKeys = flag.Bool("update-keys", false, "rewrite testdata/keys.json from the real agents' answers")

// The agents whose answers testdata/keys.json records.
const (
	classicName = "zabbix_agentd"
	agent60Name = "zabbix_agent2 6.0"
	agent70Name = "zabbix_agent2 7.0"
)

// echoKey is the key name of the echo UserParameter: it prints $1 to $9,
// each followed by the unit separator.
const echoKey = "echo.params"

const echoUserParameter = "UserParameter=" + echoKey + `[*],printf '%s\037' '$1' '$2' '$3' '$4' '$5' '$6' '$7' '$8' '$9'`

// agentAnswer is what one agent did with a key: the parameters $1 to $9 of
// the echo UserParameter (absent and empty ones look the same there, so
// trailing empty ones are left out), or its error.
type agentAnswer struct {
	Params []string `json:"params,omitempty"`
	Error  string   `json:"error,omitempty"`
}

func (a agentAnswer) equal(b agentAnswer) bool {
	return a.Error == b.Error && slices.Equal(a.Params, b.Params)
}

// keyGrammarCase is one key of testdata/keys.json with each agent's answer.
type keyGrammarCase struct {
	Key     string                 `json:"key"`
	Note    string                 `json:"note,omitempty"`
	Answers map[string]agentAnswer `json:"answers"`
}

type keyGrammarFixture struct {
	Comment []string         `json:"comment"`
	Cases   []keyGrammarCase `json:"cases"`
}

func loadKeyGrammar(t testing.TB) keyGrammarFixture {
	t.Helper()
	b, err := os.ReadFile(keyGrammarFile)
	if err != nil {
		t.Fatal(err)
	}
	var f keyGrammarFixture
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		t.Fatalf("%s: %v", keyGrammarFile, err)
	}
	return f
}

// trimEmpty drops trailing empty parameters, as the echo UserParameter
// cannot tell them from absent ones.
func trimEmpty(p []string) []string {
	for len(p) > 0 && p[len(p)-1] == "" {
		p = p[:len(p)-1]
	}
	return p
}

// expectation is what parseKey must give for c: agent 2's answer (the
// plugin runs under agent 2; 6.0 and 7.0 must agree), and a rejection
// whenever any agent rejects the key.
func (c keyGrammarCase) expectation() (agentAnswer, error) {
	a60, ok60 := c.Answers[agent60Name]
	a70, ok70 := c.Answers[agent70Name]
	classic, okc := c.Answers[classicName]
	if !ok60 || !ok70 || !okc {
		return agentAnswer{}, fmt.Errorf("answers of %s, %s and %s expected", classicName, agent60Name, agent70Name)
	}
	if !a60.equal(a70) {
		return agentAnswer{}, fmt.Errorf("agent 2 6.0 and 7.0 disagree: %+v, %+v", a60, a70)
	}
	if a60.Error == "" && classic.Error == "" && !a60.equal(classic) {
		return agentAnswer{}, fmt.Errorf("agent 2 and the classic agent accept the key with other parameters: %+v, %+v", a60, classic)
	}
	if a60.Error == "" && classic.Error != "" {
		return classic, nil
	}
	return a60, nil
}

// TestKeyGrammar checks parseKey against the parameters the real agents
// hand on for every key of testdata/keys.json, captured by
// TestKeyGrammarAgents.
func TestKeyGrammar(t *testing.T) {
	f := loadKeyGrammar(t)
	agreed := 0
	seen := map[string]bool{}
	for _, c := range f.Cases {
		if seen[c.Key] {
			t.Errorf("%s: listed twice", c.Key)
		}
		seen[c.Key] = true
		want, err := c.expectation()
		if err != nil {
			t.Errorf("%s: %v", c.Key, err)
			continue
		}
		if c.Answers[classicName].equal(want) {
			agreed++
		}
		name, params, err := parseKey(c.Key)
		if want.Error != "" {
			if err == nil {
				t.Errorf("parseKey(%q) = %q, %q; the agents answer %q", c.Key, name, params, want.Error)
			} else if err.Error() != want.Error {
				t.Errorf("parseKey(%q): %v; the agents answer %q", c.Key, err, want.Error)
			}
			continue
		}
		if err != nil {
			t.Errorf("parseKey(%q): %v; the agents hand on %q", c.Key, err, want.Params)
			continue
		}
		if name != echoKey {
			t.Errorf("parseKey(%q): key %q, want %q", c.Key, name, echoKey)
		}
		if len(params) > 9 {
			t.Errorf("%s: the echo UserParameter shows 9 parameters at most", c.Key)
		}
		if got := trimEmpty(params); !slices.Equal(got, want.Params) {
			t.Errorf("parseKey(%q) = %q; the agents hand on %q", c.Key, got, want.Params)
		}
	}
	if agreed < 40 {
		t.Errorf("%d keys where all three agents agree, want at least 40", agreed)
	}
}

// TestKeyGrammarAgents runs every key of testdata/keys.json through the
// real agents' test mode (zabbix_agentd -t, zabbix_agent2 -t of 6.0 and
// 7.0, no daemon) with an echo UserParameter in a private configuration,
// and checks their answers are the ones recorded. With -update-keys it
// records them instead:
//
//	go test ./discovery -run TestKeyGrammarAgents -update-keys
func TestKeyGrammarAgents(t *testing.T) {
	if testing.Short() && !*updateKeys {
		t.Skip("agents are not run in -short mode")
	}
	agents := map[string]string{classicName: agenttest.ClassicBinary, agent60Name: agenttest.V60.Binary(), agent70Name: agenttest.V70.Binary()}
	require := os.Getenv(agenttest.EnvRequire) == "1"
	for name, bin := range agents {
		if st, err := os.Stat(bin); err != nil || st.Mode()&0o111 == 0 {
			if require || *updateKeys {
				t.Fatalf("%s not found at %s (run scripts/install-deps.sh as root)", name, bin)
			}
			t.Logf("%s not found at %s: not compared", name, bin)
			delete(agents, name)
		}
	}
	if len(agents) == 0 {
		t.Skip("no agent installed (run scripts/install-deps.sh as root)")
	}
	dir := t.TempDir()
	conf := filepath.Join(dir, "echo.conf")
	err := os.WriteFile(conf, []byte(strings.Join([]string{
		"LogType=console", "DebugLevel=0", "Server=127.0.0.1", "Hostname=tcpstatus-key-grammar",
		"PidFile=" + filepath.Join(dir, "agent.pid"),
		// Let any character reach the echo command; it single-quotes the
		// parameters, so the table holds no key with a ' or $ in it.
		"UnsafeUserParameters=1",
		echoUserParameter,
	}, "\n")+"\n"), 0o644)
	if err != nil {
		t.Fatal(err)
	}
	f := loadKeyGrammar(t)
	type job struct {
		i          int
		agent, bin string
	}
	jobs := make(chan job)
	var mu sync.Mutex
	var wg sync.WaitGroup
	// Agent 2's test mode spends most of a second idle: run a few at once.
	for range 12 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range jobs {
				key := f.Cases[j.i].Key
				got, err := agentTest(j.bin, conf, key)
				mu.Lock()
				if err != nil {
					t.Errorf("%s -t %s: %v", j.agent, key, err)
				} else if *updateKeys {
					if f.Cases[j.i].Answers == nil {
						f.Cases[j.i].Answers = map[string]agentAnswer{}
					}
					f.Cases[j.i].Answers[j.agent] = got
				} else if want, ok := f.Cases[j.i].Answers[j.agent]; !ok || !got.equal(want) {
					t.Errorf("%s -t %s: %+v; %s records %+v", j.agent, key, got, keyGrammarFile, want)
				}
				mu.Unlock()
			}
		}()
	}
	for i, c := range f.Cases {
		if strings.ContainsAny(c.Key, "'$\n") {
			t.Errorf("%q: the echo UserParameter cannot show a parameter with ', $ or a newline", c.Key)
			continue
		}
		for name, bin := range agents {
			jobs <- job{i, name, bin}
		}
	}
	close(jobs)
	wg.Wait()
	if *updateKeys && !t.Failed() {
		b, err := json.MarshalIndent(f, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(keyGrammarFile, append(b, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: %d keys recorded", keyGrammarFile, len(f.Cases))
	}
}

// agentTest runs `<agent> -c conf -t key` and reads its answer: the echoed
// parameters, or the agent's ZBX_NOTSUPPORTED reason.
func agentTest(bin, conf, key string) (agentAnswer, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "-c", conf, "-t", key)
	cmd.Dir = filepath.Dir(conf)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		return agentAnswer{}, fmt.Errorf("%v: %s%s", err, out.String(), errOut.String())
	}
	// "<key><padding>[t|<value>]" (the classic agent) or "[s|...]" (agent
	// 2), or "[m|ZBX_NOTSUPPORTED] [<reason>]".
	// Any log line the agent would print around it is skipped.
	s := out.String()
	var rest string
	found := false
	for _, l := range strings.Split(s, "\n") {
		if r, ok := strings.CutPrefix(l, key); ok && strings.HasPrefix(strings.TrimLeft(r, " "), "[") {
			rest, found = strings.TrimLeft(r, " "), true
			break
		}
	}
	if !found {
		return agentAnswer{}, fmt.Errorf("unexpected output %q", s)
	}
	if r, ok := strings.CutPrefix(rest, "[m|ZBX_NOTSUPPORTED] ["); ok && strings.HasSuffix(r, "]") {
		return agentAnswer{Error: strings.TrimSuffix(r, "]")}, nil
	}
	if len(rest) < 4 || (rest[:3] != "[t|" && rest[:3] != "[s|") || !strings.HasSuffix(rest, "]") {
		return agentAnswer{}, fmt.Errorf("unexpected output %q", s)
	}
	fields := strings.Split(rest[3:len(rest)-1], "\x1f")
	if len(fields) != 10 || fields[9] != "" {
		return agentAnswer{}, fmt.Errorf("unexpected output %q: want 9 parameters", s)
	}
	return agentAnswer{Params: trimEmpty(fields[:9])}, nil
}
