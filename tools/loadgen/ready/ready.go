// Package ready defines the report loadgen prints (one JSON line on stdout)
// once its load is built and checked, and that the benchmark driver reads.
package ready

import "time"

// Report describes a built load.
type Report struct {
	NetNS           string            `json:"netns"`              // network namespace holding the load
	PID             int               `json:"pid"`                // loadgen's controller process
	N               int               `json:"n"`                  // sockets asked for
	Workers         int               `json:"workers"`            // worker processes holding descriptors
	BuildSeconds    float64           `json:"build_seconds"`      // time to build the load
	Expected        map[string]int    `json:"expected"`           // planned count by state name
	Counts          map[string]uint64 `json:"counts"`             // counts ss saw by state name, and "total"
	Mismatch        []string          `json:"mismatch,omitempty"` // states whose count differs from the plan
	BusyPort        uint16            `json:"busy_port"`          // the port holding most connections
	BusyPortSockets uint64            `json:"busy_port_sockets"`  // sockets on BusyPort
	ListenPorts     []uint16          `json:"listen_ports"`       // every listening port of the load
	// Globals are the host-wide sysctls raised for the load, with the
	// values they are restored to.
	Globals   map[string]string `json:"raised_global_sysctls,omitempty"`
	HoldUntil time.Time         `json:"hold_until"` // when loadgen tears the load down
}
