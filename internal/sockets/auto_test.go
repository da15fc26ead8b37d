package sockets

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
)

// scripted is a source that returns err (and visits one socket otherwise).
type scripted struct {
	name  string
	err   error
	walks atomic.Int64
}

func (s *scripted) Name() string { return s.name }
func (s *scripted) Walk(_ context.Context, _ Query, visit func(*Socket)) error {
	s.walks.Add(1)
	if s.err != nil {
		return s.err
	}
	visit(&Socket{Family: FamilyV4, State: Established})
	return nil
}

func TestAutoFallsBackOnceForGood(t *testing.T) {
	primary := &scripted{name: "netlink", err: fmt.Errorf("open: %w: %w", ErrUnsupported, errors.New("protocol not supported"))}
	fallback := &scripted{name: "proc"}
	var calls atomic.Int64
	var got error
	a := NewAuto(primary, fallback, func(err error) { calls.Add(1); got = err })
	if a.Name() != "netlink" {
		t.Errorf("name before fallback %q", a.Name())
	}
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			for range 10 {
				c, err := Count(context.Background(), a, Query{})
				if err != nil || c[Established] != 1 {
					t.Errorf("count %v, %v", c, err)
				}
			}
		})
	}
	wg.Wait()
	if calls.Load() != 1 || !errors.Is(got, ErrUnsupported) {
		t.Errorf("onFallback called %d times with %v", calls.Load(), got)
	}
	if fallback.walks.Load() != 160 {
		t.Errorf("fallback walked %d times, want 160", fallback.walks.Load())
	}
	if n := primary.walks.Load(); n < 1 || n > 16 {
		t.Errorf("primary walked %d times after failing", n)
	}
	if a.Name() != "proc" {
		t.Errorf("name after fallback %q", a.Name())
	}
}

func TestAutoKeepsPrimaryOnOtherErrors(t *testing.T) {
	primary := &scripted{name: "netlink", err: errors.New("netlink sock_diag: no buffer space")}
	fallback := &scripted{name: "proc"}
	a := NewAuto(primary, fallback, nil)
	for range 3 {
		if _, err := Count(context.Background(), a, Query{}); err == nil || errors.Is(err, ErrUnsupported) {
			t.Errorf("error %v", err)
		}
	}
	if fallback.walks.Load() != 0 || primary.walks.Load() != 3 || a.Name() != "netlink" {
		t.Errorf("fell back on an ordinary error: primary %d, fallback %d walks", primary.walks.Load(), fallback.walks.Load())
	}
	primary.err = nil
	if c, err := Count(context.Background(), a, Query{}); err != nil || c.Total() != 1 {
		t.Errorf("primary after recovery: %v %v", c, err)
	}
}
