package main

import (
	"context"
	"math/rand/v2"
	"net"
	"time"
)

// Host noise (-host-noise) proves the run does not see the machine's
// sockets: while the run goes on in its namespace, the parent, in the
// host's namespace, keeps changing the host's CLOSE_WAIT count on its
// loopback. Every second it closes the CLOSE_WAIT sockets of the previous
// round and makes between noiseMin and noiseMax new ones. Bounded in count
// (noiseMax at a time) and in time (noiseMaxTime, or the end of the run).
// Closed ends send a reset (linger 0), so nothing piles up in TIME_WAIT.
const (
	noiseMin     = 10
	noiseMax     = 60
	noiseMaxTime = 15 * time.Minute
)

// hostNoise runs until ctx ends or noiseMaxTime passes; it reports how
// many rounds and sockets it made.
func hostNoise(ctx context.Context) (rounds, sockets int, err error) {
	l, err := listenCfg.Listen(ctx, "tcp", "127.0.0.1:0")
	if err != nil {
		return 0, 0, err
	}
	defer l.Close()
	ctx, cancel := context.WithTimeout(ctx, noiseMaxTime)
	defer cancel()
	var held []net.Conn
	release := func() {
		for _, c := range held {
			c.(*net.TCPConn).SetLinger(0)
			c.Close()
		}
		held = nil
	}
	defer release()
	for {
		release()
		n := noiseMin + rand.IntN(noiseMax-noiseMin+1)
		for range n {
			c, err := dialer.DialContext(ctx, "tcp", l.Addr().String())
			if err != nil {
				return rounds, sockets, nil
			}
			s, err := l.Accept()
			if err != nil {
				c.Close()
				return rounds, sockets, err
			}
			c.Close() // the accepted end goes to CLOSE_WAIT
			held = append(held, s)
		}
		rounds++
		sockets += n
		select {
		case <-ctx.Done():
			return rounds, sockets, nil
		case <-time.After(time.Second):
		}
	}
}
