package faults

import (
	"bufio"
	"encoding/json"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"zabbix-agent2-plugin-tcpstatus/internal/agenttest"
	"zabbix-agent2-plugin-tcpstatus/internal/testutil"
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
