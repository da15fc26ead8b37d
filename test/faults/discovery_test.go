package faults

import (
	"bufio"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"zabbix-agent2-plugin-tcpstatus/testkit/agentprototest"
	"zabbix-agent2-plugin-tcpstatus/testkit/agenttest"
	"zabbix-agent2-plugin-tcpstatus/testkit/testutil"
)

// listenerName is the command name of the short-lived listener processes.
const listenerName = "faults-listener"

// TestAgentDiscoveryProcessesVanish: while tcp.port.discovery maps socket
// inodes to processes, listener processes (of the agent's user, so their fds
// are readable) start and exit continuously. Every discovery must succeed
// with valid JSON, and some must have named the short-lived processes.
func TestAgentDiscoveryProcessesVanish(t *testing.T) {
	versions(t, func(t *testing.T, v agenttest.Version) {
		a := agenttest.Start(t, v)
		dir := testutil.WorldDir(t)
		helper := testutil.CopyExecutable(t, dir, "", listenerName)

		var mu sync.Mutex
		ports := map[string]bool{}
		stop := make(chan struct{})
		var spawned atomic.Int64
		var wg sync.WaitGroup
		// 12 spawners, each keeping one listener process (3 ports, 10-150 ms
		// of life) alive at a time until stop.
		for i := range 12 {
			wg.Add(1)
			go func(seed uint64) {
				defer wg.Done()
				rnd := rand.New(rand.NewPCG(seed, 7))
				for {
					select {
					case <-stop:
						return
					default:
					}
					cmd := exec.Command("setpriv", "--reuid="+agenttest.AgentUser, "--regid="+agenttest.AgentUser,
						"--init-groups", "--pdeathsig=KILL", "--", helper)
					cmd.Env = append(os.Environ(), envListener+"=3", envListenerMs+"="+strconv.Itoa(10+rnd.IntN(140)))
					out, err := cmd.StdoutPipe()
					if err != nil || cmd.Start() != nil {
						t.Errorf("start listener: %v", err)
						return
					}
					sc := bufio.NewScanner(out)
					for sc.Scan() {
						mu.Lock()
						ports[sc.Text()] = true
						mu.Unlock()
					}
					cmd.Wait()
					spawned.Add(1)
				}
			}(uint64(i))
		}
		var queries, hits int
		deadline := time.Now().Add(3 * time.Second)
		for time.Now().Before(deadline) {
			got, err := passive(a.Port(), "tcp.port.discovery", 0)
			if err != nil {
				close(stop)
				wg.Wait()
				t.Fatalf("tcp.port.discovery while processes exit: %v", err)
			}
			var d []map[string]string
			if err := json.Unmarshal([]byte(got), &d); err != nil {
				close(stop)
				wg.Wait()
				t.Fatalf("tcp.port.discovery = %q: %v", got, err)
			}
			queries++
			mu.Lock()
			for _, e := range d {
				if ports[e["{#PORT}"]] && e["{#PROCESS}"] == listenerName {
					hits++
				}
			}
			mu.Unlock()
			time.Sleep(20 * time.Millisecond)
		}
		close(stop)
		wg.Wait()
		t.Logf("%d discoveries while %d listener processes came and went; %d entries named one", queries, spawned.Load(), hits)
		if queries < 10 || spawned.Load() < 20 {
			t.Fatalf("too little churn: %d discoveries, %d processes", queries, spawned.Load())
		}
		if hits == 0 {
			t.Fatalf("no discovery named a listener process: the inode → process mapping was not exercised")
		}
		if err := a.Alive(); err != nil {
			t.Fatal(err)
		}
	})
}

// TestPluginConcurrentColdDiscovery sends 200 tcp.port.discovery requests
// at once (agent 7.0 style) to a fresh plugin process, so its cache of
// socket owners is cold, in a network namespace where one process holds 8
// listeners and 10000 more descriptors, 4 of the listeners past the owner
// scan's first pass. Every answer must name the process of all 8 ports: the
// requests share one scan of /proc instead of each scanning on its own
// until its deadline cuts it short. Each request has 3 s (the agent's
// default), or six times what one discovery alone takes on another fresh
// plugin if that is more, so that the rest of the machine (processes
// holding millions of descriptors) does not decide the result.
func TestPluginConcurrentColdDiscovery(t *testing.T) {
	requireRoot(t)
	_, err := exec.LookPath("nsenter")
	require(t, err == nil, "nsenter (util-linux) not found")
	ns := newNetns(t)
	helper := testutil.CopyExecutable(t, testutil.WorldDir(t), "", listenerName)
	cmd := exec.Command("nsenter", "--net=/run/netns/"+ns, helper)
	cmd.Env = append(os.Environ(), envListener+"=8", envListenerMs+"=120000", envListenerFDs+"=10000")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	var ports []string
	sc := bufio.NewScanner(out)
	for sc.Scan() && sc.Text() != "ready" {
		ports = append(ports, sc.Text())
	}
	if len(ports) != 8 {
		t.Fatalf("listener process printed ports %v", ports)
	}

	wrap := []string{"nsenter", "--net=/run/netns/" + ns}
	alone := startPlugin(t, pluginOpts{wrap: wrap})
	alone.configure(nil)
	began := time.Now()
	if _, err := alone.get(60*time.Second, "tcp.port.discovery"); err != nil {
		t.Fatalf("one discovery alone: %v", err)
	}
	timeout := max(3, int(math.Ceil(6*time.Since(began).Seconds())))

	p := startPlugin(t, pluginOpts{wrap: wrap})
	p.configure(nil)
	const n = 200
	chans := make([]<-chan agentprototest.Frame, n)
	start := time.Now()
	for i := range n {
		_, ch, err := p.export("tcp.port.discovery", nil, timeout)
		if err != nil {
			t.Fatal(err)
		}
		chans[i] = ch
	}
	var unnamed, failed int
	var firstErr error
	for i, ch := range chans {
		v, err := p.await(ch, 30*time.Second, "tcp.port.discovery")
		var rows []map[string]string
		if err == nil {
			err = json.Unmarshal([]byte(v), &rows)
		}
		if err != nil {
			failed++
			if firstErr == nil {
				firstErr = fmt.Errorf("request %d: %v", i, err)
			}
			continue
		}
		named := map[string]bool{}
		for _, r := range rows {
			if r["{#PROCESS}"] == listenerName {
				named[r["{#PORT}"]] = true
			}
		}
		for _, port := range ports {
			if !named[port] {
				unnamed++
			}
		}
	}
	t.Logf("%d concurrent cold discoveries, %d s each, answered in %v: %d of %d ports without {#PROCESS} (%.1f%%), %d failed",
		n, timeout, time.Since(start).Round(time.Millisecond), unnamed, n*len(ports), 100*float64(unnamed)/float64(n*len(ports)), failed)
	if failed > 0 {
		t.Fatalf("%d requests failed; first: %v", failed, firstErr)
	}
	if unnamed > 0 {
		t.Errorf("%d ports without their process name; plugin log:\n%s", unnamed, tail(p.logText(), 10))
	}
}
