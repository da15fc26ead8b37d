package agent

import (
	"os/exec"
	"runtime"
	"sync"
)

// The agents are started with a parent-death signal (setpriv --pdeathsig),
// so they die with the test binary even when its cleanups cannot run (a
// -timeout panic). The kernel sends that signal when the *thread* that forked
// the child ends, and Go ends a thread when a goroutine locked to it returns
// (tests entering network namespaces do that), so every start happens on one
// thread that is locked and never ends.
var (
	spawnOnce sync.Once
	spawnReq  chan func()
)

// startCmd runs cmd.Start on the spawner thread.
func startCmd(cmd *exec.Cmd) error {
	spawnOnce.Do(func() {
		spawnReq = make(chan func())
		go func() {
			runtime.LockOSThread() // never unlocked: the thread lives as long as the process
			for f := range spawnReq {
				f()
			}
		}()
	})
	errc := make(chan error, 1)
	spawnReq <- func() { errc <- cmd.Start() }
	return <-errc
}

// runCmd is cmd.Run with the start on the spawner thread.
func runCmd(cmd *exec.Cmd) error {
	if err := startCmd(cmd); err != nil {
		return err
	}
	return cmd.Wait()
}
