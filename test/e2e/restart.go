package main

import (
	"context"
	"fmt"
	"strconv"
	"time"
)

// The "Port N: Not listening" cycles, on the run's gone port (a discovered
// listener both hosts with triggers watch), with the port's down period
// ({$TCP.PORT.DOWN.PERIOD:"N"}, a context macro) set to goneDown:
//
//  1. Restart within one poll: the listener closes, a check of
//     tcp.sockets.get records the port as not listening (a 0 in the history
//     of tcp.port.listening), and it listens again before the next check.
//  2. Down longer than the period: the trigger goes to PROBLEM on both
//     hosts. On the agent 2 host the problem is closed by hand
//     (event.acknowledge, close) once the problem expression's window has
//     passed (see below); the port stays down for at least two more checks
//     and no new PROBLEM event may appear. On the classic agent's host the
//     problem stays open and recovers through its recovery expression when
//     the port listens again; the closed one stays OK.
//
// At the end each host's trigger must have exactly one PROBLEM event since
// the restart, from the long down and not before the period after its last
// listening value: the restart raised none, whatever the trigger's value
// was in between.
//
// The problem expression is max(listening,P)=0 and max(listening,P:now-P)=1,
// true from P to 2P after the last check that found the port listening.
// Zabbix sets a closed problem's trigger back to OK and evaluates it on each
// new value, so a problem closed inside that window opens again at the next
// check; closed after it, it stays closed while the port stays down. An
// expression true for one check only would make every close stick, but a
// late or failed check at that moment would then lose the problem for good;
// the template keeps the window and says so.
const goneDown = 30 * time.Second

// notListening is the name of the gone port's trigger.
func notListening(port int) string { return "Port " + strconv.Itoa(port) + ": Not listening" }

// goneCycle runs both cycles on the targets (the agent 2 host first, whose
// problem is closed by hand); it returns when the port listens again and
// every check has passed.
func goneCycle(ctx context.Context, z *zabbix, targets []*target, s *testSockets) error {
	v := z.l.version
	if len(targets) < 2 {
		return fmt.Errorf("the Not listening cycles need two hosts, got %d", len(targets))
	}
	tgs := cloneTargets(targets)
	port := strconv.Itoa(s.gonePort)
	name := notListening(s.gonePort)
	lisKey := "tcp.port.listening[" + port + "]"
	for _, tg := range tgs {
		if err := setMacros(ctx, z, tg, map[string]string{`{$TCP.PORT.DOWN.PERIOD:"` + port + `"}`: fmt.Sprintf("%.0fs", goneDown.Seconds())}); err != nil {
			return err
		}
	}
	if err := z.reloadConfig(ctx); err != nil {
		return err
	}
	triggers := map[*target]string{} // host → trigger id
	for _, tg := range tgs {
		tr, err := triggerNamed(ctx, z, tg, name)
		if err != nil {
			return err
		}
		triggers[tg] = tr.TriggerID
	}

	// 1. Restart within one poll. The period counts from the last check
	// that found the port listening, so it must be longer than the time
	// between checks (the template's 5m against its 1m interval): a check
	// just before the close stands for the 1m poll here.
	for _, tg := range tgs {
		if _, err := waitListening(ctx, z, tg, lisKey, time.Now(), 1); err != nil {
			return fmt.Errorf("restart: %w", err)
		}
	}
	t0 := time.Now()
	if err := s.closeGone(); err != nil {
		return err
	}
	for _, tg := range tgs {
		if _, err := waitListening(ctx, z, tg, lisKey, t0, 0); err != nil {
			return fmt.Errorf("restart: %w", err)
		}
	}
	tUp := time.Now()
	down := tUp.Sub(t0)
	if err := s.reopenGone(); err != nil {
		return err
	}
	for _, tg := range tgs {
		if _, err := waitListening(ctx, z, tg, lisKey, tUp, 1); err != nil {
			return fmt.Errorf("restart: %w", err)
		}
	}
	if down >= goneDown {
		return fmt.Errorf("restart: the port was down %.0fs, not less than the period %s", down.Seconds(), goneDown)
	}
	logf("Zabbix %s: port %s restarted: down %.1fs, a check of each host recorded it not listening, the next listening again (period %s); %.0fs",
		v, port, down.Seconds(), goneDown, time.Since(t0).Seconds())

	// 2. Down longer than the period.
	t1 := time.Now()
	if err := s.closeGone(); err != nil {
		return err
	}
	// The last check of each host that found the port listening (one
	// under way at the close may carry a later clock): the window of the
	// problem expression starts from it.
	lastUp := map[*target]int64{}
	for _, tg := range tgs {
		vals, err := listeningHistory(ctx, z, tg, lisKey, tUp)
		if err != nil {
			return err
		}
		for _, hv := range vals {
			if hv.Value == "1" {
				lastUp[tg] = max(lastUp[tg], hv.clock())
			}
		}
		if lastUp[tg] == 0 {
			return fmt.Errorf("%s: no listening value of %s since the restart", tg.hostname, lisKey)
		}
	}
	for _, tg := range tgs {
		if err := waitTriggers(ctx, z, tg, map[string]string{name: "1"}, true); err != nil {
			return err
		}
	}
	logf("Zabbix %s: %q went to PROBLEM on both hosts %.0fs after the port closed", v, name, time.Since(t1).Seconds())

	// Close the agent 2 host's problem by hand, after the window.
	closer, keeper := tgs[0], tgs[1]
	problems, err := triggerEvents(ctx, z, triggers[closer], t0)
	if err != nil {
		return err
	}
	if len(problems) != 1 {
		return fmt.Errorf("%s: %d PROBLEM events of %q since the restart, want 1: %v", closer.hostname, len(problems), name, problems)
	}
	windowEnd := time.Unix(lastUp[closer], 0).Add(2*goneDown + time.Second)
	if d := time.Until(windowEnd); d > 0 {
		logf("Zabbix %s: %s: waiting %.0fs for the problem expression's window to pass before the manual close", v, closer.hostname, d.Seconds())
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(d):
		}
	}
	tClose := time.Now()
	if err := z.api.call(ctx, "event.acknowledge", map[string]any{"eventids": problems[0].EventID, "action": 1}, nil); err != nil {
		return fmt.Errorf("%s: close the problem of %q: %w", closer.hostname, name, err)
	}
	if err := waitFor(ctx, closer.hostname+": "+name+" closed by hand", 60*time.Second, time.Second, func() (bool, error) {
		tr, err := triggerNamed(ctx, z, closer, name)
		return err == nil && tr.Value == "0", err
	}); err != nil {
		return err
	}
	// Two more checks of the port, still down.
	after := time.Now()
	if _, err := waitListening(ctx, z, closer, lisKey, after, 0); err != nil {
		return err
	}
	second, err := waitListening(ctx, z, closer, lisKey, time.Now(), 0)
	if err != nil {
		return err
	}
	// The problem expression is evaluated on each value; give the server
	// the second one's evaluation.
	time.Sleep(2 * time.Second)
	if ev, err := triggerEvents(ctx, z, triggers[closer], tClose); err != nil {
		return err
	} else if len(ev) > 0 {
		return fmt.Errorf("%s: %q opened again after the manual close while the port stayed down: %v", closer.hostname, name, ev)
	}
	tr, err := triggerNamed(ctx, z, closer, name)
	if err != nil {
		return err
	}
	if tr.Value != "0" {
		return fmt.Errorf("%s: %q is %s after the manual close", closer.hostname, name, tr.Value)
	}
	if tr, err := triggerNamed(ctx, z, keeper, name); err != nil {
		return err
	} else if tr.Value != "1" {
		return fmt.Errorf("%s: %q is %s while the port is still down, want PROBLEM", keeper.hostname, name, tr.Value)
	}
	logf("Zabbix %s: %s: the manually closed %q stayed closed over two more checks with the port down (the last at %s), %.0fs",
		v, closer.hostname, name, time.Unix(second, 0).UTC().Format("15:04:05"), time.Since(tClose).Seconds())

	// Listen again: the open problem recovers, the closed one stays OK.
	tUp = time.Now()
	if err := s.reopenGone(); err != nil {
		return err
	}
	for _, tg := range tgs {
		if err := waitTriggers(ctx, z, tg, map[string]string{name: "0"}, true); err != nil {
			return err
		}
		if _, err := waitListening(ctx, z, tg, lisKey, tUp, 1); err != nil {
			return err
		}
	}
	for _, tg := range tgs {
		ev, err := triggerEvents(ctx, z, triggers[tg], t0)
		if err != nil {
			return err
		}
		if len(ev) != 1 {
			return fmt.Errorf("%s: %d PROBLEM events of %q since the restart, want exactly the long down's: %v", tg.hostname, len(ev), name, ev)
		}
		if c := ev[0].clock(); c < lastUp[tg]+int64(goneDown.Seconds()) {
			return fmt.Errorf("%s: %q opened at %d, before the period %s after the last listening check at %d", tg.hostname, name, c, goneDown, lastUp[tg])
		}
		if ev[0].REventID == "0" || ev[0].REventID == "" {
			return fmt.Errorf("%s: the problem of %q is still open after the port listens again", tg.hostname, name)
		}
	}
	if tr, err := triggerNamed(ctx, z, closer, name); err != nil || tr.State != "0" {
		return fmt.Errorf("%s: %q after the port listens again: %+v %v", closer.hostname, name, tr, err)
	}
	logf("Zabbix %s: %s: %q recovered when the port listened again; %s: the closed problem stayed closed; one PROBLEM event per host since the restart; cycles took %.0fs",
		v, keeper.hostname, name, closer.hostname, time.Since(t0).Seconds())
	return nil
}

// cloneTargets copies the targets for a cycle that runs beside the
// scenario: refreshItems replaces a target's item map, which the scenario
// reads meanwhile.
func cloneTargets(targets []*target) []*target {
	out := make([]*target, len(targets))
	for i, tg := range targets {
		c := *tg
		c.items, c.absent = nil, nil
		out[i] = &c
	}
	return out
}

// triggerNamed finds a trigger of the host by name.
func triggerNamed(ctx context.Context, z *zabbix, tg *target, name string) (trigger, error) {
	var trs []trigger
	if err := z.api.call(ctx, "trigger.get", map[string]any{"hostids": tg.hostid, "filter": map[string]any{"description": name},
		"output": []string{"triggerid", "description", "value", "state", "error"}}, &trs); err != nil {
		return trigger{}, err
	}
	if len(trs) != 1 {
		return trigger{}, fmt.Errorf("%s: %d triggers named %q", tg.hostname, len(trs), name)
	}
	return trs[0], nil
}

type event struct {
	EventID  string `json:"eventid"`
	Clock    string `json:"clock"`
	Value    string `json:"value"`
	REventID string `json:"r_eventid"`
}

func (e event) clock() int64 { c, _ := strconv.ParseInt(e.Clock, 10, 64); return c }

// triggerEvents lists the PROBLEM events of a trigger since from.
func triggerEvents(ctx context.Context, z *zabbix, triggerID string, from time.Time) ([]event, error) {
	var ev []event
	err := z.api.call(ctx, "event.get", map[string]any{
		"source": 0, "object": 0, "objectids": []string{triggerID}, "value": 1, "time_from": from.Unix(),
		"output": []string{"eventid", "clock", "value", "r_eventid"}, "sortfield": []string{"clock", "eventid"},
	}, &ev)
	return ev, err
}

type histValue struct {
	Clock string `json:"clock"`
	NS    string `json:"ns"`
	Value string `json:"value"`
}

func (h histValue) clock() int64 { c, _ := strconv.ParseInt(h.Clock, 10, 64); return c }

// listeningHistory returns the values of an unsigned item of the host
// since from, oldest first.
func listeningHistory(ctx context.Context, z *zabbix, tg *target, key string, from time.Time) ([]histValue, error) {
	if tg.items == nil {
		if err := refreshItems(ctx, z, tg); err != nil {
			return nil, err
		}
	}
	it, ok := tg.items[key]
	if !ok {
		return nil, fmt.Errorf("%s: no item %s", tg.hostname, key)
	}
	var vals []histValue
	err := z.api.call(ctx, "history.get", map[string]any{"history": 3, "itemids": []string{it.ItemID}, "time_from": from.Unix(),
		"output": "extend", "sortfield": "clock", "sortorder": "ASC"}, &vals)
	return vals, err
}

// waitListening asks for checks of the host's socket table every 4 s until
// the history of key holds the value want from a check at or after from,
// and returns that check's clock.
func waitListening(ctx context.Context, z *zabbix, tg *target, key string, from time.Time, want int) (int64, error) {
	if err := refreshItems(ctx, z, tg); err != nil {
		return 0, err
	}
	master, ok := tg.items["tcp.sockets.get"]
	if !ok {
		return 0, fmt.Errorf("%s: no tcp.sockets.get", tg.hostname)
	}
	var at int64
	lastCheck := time.Time{}
	err := waitFor(ctx, fmt.Sprintf("%s: %s = %d from a check after %s", tg.hostname, key, want, from.UTC().Format("15:04:05")), 60*time.Second, time.Second, func() (bool, error) {
		if time.Since(lastCheck) > 4*time.Second {
			if err := checkNow(ctx, z, []string{master.ItemID}); err != nil {
				return false, err
			}
			lastCheck = time.Now()
		}
		vals, err := listeningHistory(ctx, z, tg, key, from)
		if err != nil {
			return false, err
		}
		for _, hv := range vals {
			ns, _ := strconv.ParseInt(hv.NS, 10, 64)
			if hv.clock()*1e9+ns > from.UnixNano() && hv.Value == strconv.Itoa(want) {
				at = hv.clock()
				return true, nil
			}
		}
		return false, nil
	})
	return at, err
}
