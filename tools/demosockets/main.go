// Command demosockets holds a few TCP sockets on loopback for the demo
// (scripts/demo.sh): listeners on 127.0.0.1 and ::1, established
// connections to them, connections the server closed first (the server side
// in TIME_WAIT once the client closed too) and half-closed ones (CLOSE_WAIT on
// the client, FIN_WAIT2 on the server). It prints "ready" when they are in
// place and closes everything and exits on SIGINT/SIGTERM or after
// -duration, whichever comes first.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"
)

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "Error:", err)
		os.Exit(1)
	}
}

func run(args []string, out io.Writer) error {
	fs := flag.NewFlagSet("demosockets", flag.ContinueOnError)
	port := fs.Int("port", 10098, "loopback port to listen on")
	estab := fs.Int("established", 3, "established connections per address family")
	timeWait := fs.Int("timewait", 2, "connections left in TIME_WAIT per family")
	halfClosed := fs.Int("halfclosed", 1, "CLOSE_WAIT/FIN_WAIT2 pairs per family")
	duration := fs.Duration("duration", 5*time.Minute, "exit after this long")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *port < 1 || *port > 65535 {
		return fmt.Errorf("-port %d out of range", *port)
	}
	var keep []io.Closer
	defer func() {
		for _, c := range keep {
			c.Close()
		}
	}()
	families := 0
	for _, host := range []string{"127.0.0.1", "::1"} {
		addr := net.JoinHostPort(host, strconv.Itoa(*port))
		l, err := net.Listen("tcp", addr)
		if err != nil {
			if host == "::1" { // IPv6 off: IPv4 only
				fmt.Fprintf(out, "no IPv6 listener: %v\n", err)
				continue
			}
			return err
		}
		keep = append(keep, l)
		families++
		open := func() (client, server net.Conn, err error) {
			client, err = net.Dial("tcp", addr)
			if err != nil {
				return nil, nil, err
			}
			server, err = l.Accept()
			if err != nil {
				client.Close()
				return nil, nil, err
			}
			return client, server, nil
		}
		for range *estab {
			c, s, err := open()
			if err != nil {
				return err
			}
			keep = append(keep, c, s)
		}
		for range *timeWait {
			c, s, err := open()
			if err != nil {
				return err
			}
			s.Close() // the server closes first...
			waitEOF(c)
			c.Close() // ...and ends in TIME_WAIT once the client closes
		}
		for range *halfClosed {
			c, s, err := open()
			if err != nil {
				return err
			}
			s.(*net.TCPConn).CloseWrite() // server FIN_WAIT2, client CLOSE_WAIT
			waitEOF(c)
			keep = append(keep, c, s)
		}
	}
	fmt.Fprintf(out, "ready: port %d, %d families, per family 1 listener, %d established pairs, %d time-wait, %d close-wait/fin-wait-2 pairs\n",
		*port, families, *estab, *timeWait, *halfClosed)
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	select {
	case <-sig:
	case <-time.After(*duration):
	}
	return nil
}

// waitEOF reads from c until the peer's FIN arrives (bounded to 5 s).
func waitEOF(c net.Conn) {
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 64)
	for {
		if _, err := c.Read(buf); err != nil {
			if !errors.Is(err, io.EOF) {
				fmt.Fprintf(os.Stderr, "waiting for FIN: %v\n", err)
			}
			return
		}
	}
}
