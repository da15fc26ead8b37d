package main

import (
	"fmt"
	"math"
)

// Port blocks. Worker i listens on base+i of each block, in both families.
// The nftables rules of the namespace key on the first two blocks.
const (
	portTimeWait    = 20000 // listeners whose final ACK is dropped: TIME_WAIT + LAST_ACK pairs
	portSynRecv     = 21000 // listeners whose handshake ACK is dropped: SYN_RECV
	portEstablish   = 22000 // ESTABLISHED and CLOSE_WAIT/FIN_WAIT2 pairs
	portExtra       = 23000 // extra listeners (worker 0)
	maxWorkers      = 999
	maxTuplesPerDst = 24000   // 4-tuples per (destination, port) kept below the ephemeral range
	maxDestinations = 1 << 24 // IPv4 loopback addresses 127.0.0.1 up
)

// mix is the requested share of each state in the total.
type mix struct {
	Established float64 // ESTABLISHED (both ends of a pair, SYN_RECV clients included)
	TimeWait    float64 // TIME_WAIT; the same number of LAST_ACK comes with it
	CloseWait   float64 // CLOSE_WAIT; the same number of FIN_WAIT2 comes with it
	SynRecv     float64 // SYN_RECV request sockets; each has an ESTABLISHED client
	IPv6        float64 // share of every category built over ::1
	Listeners   int     // extra LISTEN sockets per family
	// Destinations, when above 1, is how many IPv4 loopback addresses
	// (127.0.0.1 up) the IPv4 clients connect to, in turn: as many distinct
	// (local address, remote address, remote port) destinations per
	// listening port. 0 or 1: 127.0.0.1 only.
	Destinations int
}

// job is what one worker process builds, per family (index 0: IPv4, 1: IPv6).
type job struct {
	ID          int      `json:"id"`
	EstPairs    [2]int   `json:"est_pairs"`
	CWPairs     [2]int   `json:"cw_pairs"`
	TWPairs     [2]int   `json:"tw_pairs"`
	SynRecv     [2]int   `json:"syn_recv"`
	ExtraListen []uint16 `json:"extra_listen,omitempty"`
	Batch       int      `json:"batch"`
	Dests       int      `json:"dests,omitempty"` // mix.Destinations
}

func (j job) estPort() uint16 { return uint16(portEstablish + j.ID) }
func (j job) twPort() uint16  { return uint16(portTimeWait + j.ID) }
func (j job) synPort() uint16 { return uint16(portSynRecv + j.ID) }

// fds is the number of descriptors the worker holds once built.
func (j job) fds() int {
	n := 6 + len(j.ExtraListen)*2
	for f := 0; f < 2; f++ {
		n += 2*j.EstPairs[f] + 2*j.CWPairs[f] + j.SynRecv[f]
	}
	return n
}

// plan is the whole load: the expected count of every state and the jobs.
type plan struct {
	N        int            `json:"n"`
	Expected map[string]int `json:"expected"`
	Jobs     []job          `json:"-"`
}

// split divides total into n parts differing by at most one.
func split(total, n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = total / n
		if i < total%n {
			out[i]++
		}
	}
	return out
}

// famSplit divides n into IPv4 and IPv6 parts.
func famSplit(n int, v6 float64) [2]int {
	six := int(math.Round(float64(n) * v6))
	return [2]int{n - six, six}
}

func makePlan(n int, m mix, fdsPerWorker int) (plan, error) {
	if n < 0 || fdsPerWorker < 100 {
		return plan{}, fmt.Errorf("bad size: n=%d fds per worker=%d", n, fdsPerWorker)
	}
	if m.Destinations < 0 || m.Destinations > maxDestinations {
		return plan{}, fmt.Errorf("destinations must be within 0..%d", maxDestinations)
	}
	for _, f := range []float64{m.Established, m.TimeWait, m.CloseWait, m.SynRecv, m.IPv6} {
		if f < 0 || f > 1 {
			return plan{}, fmt.Errorf("shares must be within 0..1")
		}
	}
	if m.Established+2*m.TimeWait+2*m.CloseWait+m.SynRecv > 1.0001 {
		return plan{}, fmt.Errorf("shares add up to more than 1 (TIME_WAIT and CLOSE_WAIT count twice: LAST_ACK and FIN_WAIT2 come with them)")
	}
	round := func(f float64) int { return int(math.Round(f * float64(n))) }
	syn := round(m.SynRecv)
	est := max(0, (round(m.Established)-syn)/2)
	tw := round(m.TimeWait)
	cw := round(m.CloseWait)
	fds := 2*est + 2*cw + syn
	w := max(1, (fds+fdsPerWorker-1)/fdsPerWorker)
	// Keep the 4-tuples per listener below the ephemeral port range.
	w = max(w, (tw+maxTuplesPerDst-1)/maxTuplesPerDst, (est+cw+maxTuplesPerDst-1)/maxTuplesPerDst)
	if w > maxWorkers {
		return plan{}, fmt.Errorf("%d workers needed, at most %d supported", w, maxWorkers)
	}
	p := plan{N: n, Expected: map[string]int{
		"established": 2*est + syn,
		"syn_recv":    syn,
		"time_wait":   tw,
		"last_ack":    tw,
		"close_wait":  cw,
		"fin_wait2":   cw,
		"listen":      2 * (3*w + m.Listeners),
	}}
	e, t, c, s := split(est, w), split(tw, w), split(cw, w), split(syn, w)
	for i := 0; i < w; i++ {
		j := job{ID: i, EstPairs: famSplit(e[i], m.IPv6), TWPairs: famSplit(t[i], m.IPv6),
			CWPairs: famSplit(c[i], m.IPv6), SynRecv: famSplit(s[i], m.IPv6), Batch: 4000, Dests: m.Destinations}
		if i == 0 {
			for k := 0; k < m.Listeners; k++ {
				j.ExtraListen = append(j.ExtraListen, uint16(portExtra+k))
			}
		}
		p.Jobs = append(p.Jobs, j)
	}
	total := 0
	for _, v := range p.Expected {
		total += v
	}
	p.Expected["total"] = total
	return p, nil
}
