package main

import "testing"

func TestNatcasecmp(t *testing.T) {
	for _, c := range []struct {
		a, b string
		want int
	}{
		{"a", "a", 0},
		{"", "a", -1},
		{"a", "", 1},
		{"A", "a", 0},
		{"item2", "item10", -1},
		{"item10", "item2", 1},
		{"x01", "x1", -1},
		{"tcp.limits.get", "tcp.limit[somaxconn]", -1},  // upper-case fold: 'S' < '['
		{"TCP.SYNCOOKIES.RATE", "TCP.SYN_RECV.MAX", -1}, // upper-case fold: 'C' < '_'
		{"tcp.port.get[{#PORT}]", "tcp.port.listening[{#PORT}]", -1},
		{"a b", "ab", 0},
	} {
		if got := natcasecmp(c.a, c.b); got != c.want {
			t.Errorf("natcasecmp(%q, %q) = %d, want %d", c.a, c.b, got, c.want)
		}
		if got := natcasecmp(c.b, c.a); got != -c.want {
			t.Errorf("natcasecmp(%q, %q) = %d, want %d", c.b, c.a, got, -c.want)
		}
	}
}
