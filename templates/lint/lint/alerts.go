package lint

import (
	"strings"
)

// The alerting rules: what makes a trigger trustworthy on call.
//
//   - recovery: every trigger has a recovery expression (hysteresis: a
//     lower value, a longer window, or both) or says in its description,
//     after NoRecoveryMark, why its problem expression alone may decide.
//     A recovery expression equal to the problem expression is no
//     hysteresis.
//   - rate-window: an item whose values are changes of a counter (change
//     per second or simple change) is read only over a time window (avg,
//     sum, min, max, count, percentile with a period, not last() or #n),
//     and such a trigger has a recovery expression: one event on one
//     sample must not open and close problems.
//   - manual-close: a trigger that may be closed by hand has a recovery
//     expression and a problem expression true only at a transition (a
//     time-shifted window or change()); otherwise the still-true problem
//     expression reopens it at the next evaluation.
//   - opdata: every trigger shows operational data, except a trigger on
//     nodata() alone, which has no value to show.
//   - event-value: every trigger has an event name showing a value or its
//     threshold ({ITEM.VALUE}, {ITEM.LASTVALUE}, an expression macro {?...}
//     or a user macro).

// NoRecoveryMark starts the sentence of a trigger description that says
// why the trigger has no recovery expression.
const NoRecoveryMark = "No recovery expression: "

// windowFuncs read a period of values.
var windowFuncs = map[string]bool{"avg": true, "sum": true, "min": true, "max": true, "count": true, "percentile": true}

// funcCall is one history function call of an expression: its name, the
// item it reads and its arguments after the item query.
type funcCall struct {
	name string
	ref  itemRef
	args []string
}

// funcCalls lists the history function calls of an expression.
func funcCalls(expr string) []funcCall {
	var out []funcCall
	for i := 0; i < len(expr); i++ {
		if expr[i] == '"' {
			end, err := skipQuoted(expr, i)
			if err != nil {
				return out
			}
			i = end
			continue
		}
		if expr[i] != '(' || i+1 >= len(expr) || expr[i+1] != '/' {
			continue
		}
		j := i
		for j > 0 && (expr[j-1] >= 'a' && expr[j-1] <= 'z' || expr[j-1] >= 'A' && expr[j-1] <= 'Z') {
			j--
		}
		name := expr[j:i]
		ref, end, err := parseQuery(expr, i+1)
		if err != nil {
			return out
		}
		// Arguments after the query, up to the closing parenthesis.
		var args []string
		depth, start := 0, end
		k := end
	loop:
		for ; k < len(expr); k++ {
			switch expr[k] {
			case '"':
				e, err := skipQuoted(expr, k)
				if err != nil {
					break loop
				}
				k = e
			case '{':
				depth++
			case '}':
				depth--
			case '(':
				depth++
			case ',':
				if depth == 0 {
					if k > start {
						args = append(args, strings.TrimSpace(expr[start:k]))
					}
					start = k + 1
				}
			case ')':
				if depth == 0 {
					if k > start {
						args = append(args, strings.TrimSpace(expr[start:k]))
					}
					break loop
				}
				depth--
			}
		}
		out = append(out, funcCall{name: name, ref: ref, args: args})
		i = k
	}
	return out
}

// isCounterChange reports whether an item's values are changes of a
// counter: a change-per-second or simple-change preprocessing step.
func isCounterChange(it *elem) bool {
	for _, s := range it.list("preprocessing", "step") {
		switch s.val("type") {
		case "CHANGE_PER_SECOND", "SIMPLE_CHANGE":
			return true
		}
	}
	return false
}

func (c *checker) checkAlerting(t *template, tr *elem, rule, path string) {
	expr := tr.val("expression")
	rec := ""
	if tr.val("recovery_mode") == "RECOVERY_EXPRESSION" {
		rec = strings.TrimSpace(tr.val("recovery_expression"))
	}
	desc := tr.val("description")
	switch {
	case rec == "" && !hasReason(desc):
		c.add(tr.line, "recovery", path, "no recovery expression and no reason for none (a description sentence starting %q)", NoRecoveryMark)
	case rec != "" && rec == strings.TrimSpace(expr):
		c.add(tr.line, "recovery", path, "the recovery expression is the problem expression: no hysteresis")
	}
	calls := funcCalls(expr)
	onlyNodata := len(calls) > 0
	for _, f := range calls {
		if f.name != "nodata" {
			onlyNodata = false
		}
		it := t.items[f.ref.key]
		if it == nil && rule != "" {
			it = t.protos[rule][f.ref.key]
		}
		if it == nil || !isCounterChange(it) {
			continue
		}
		period := ""
		if len(f.args) > 0 {
			period = f.args[0]
		}
		if !windowFuncs[f.name] || period == "" || strings.HasPrefix(period, "#") {
			c.add(tr.line, "rate-window", path, "%s() of %s, a counter's change: read it over a time window (sum, avg, min, max, count over a period)", f.name, f.ref.key)
		}
		if rec == "" {
			c.add(tr.line, "rate-window", path, "trigger on %s, a counter's change, without a recovery expression", f.ref.key)
		}
	}
	if tr.val("manual_close") == "YES" {
		edge := strings.Contains(expr, ":now-") || strings.Contains(expr, "change(")
		if rec == "" || !edge {
			c.add(tr.line, "manual-close", path, "manual close needs a recovery expression and a problem expression true only at a transition (time-shifted window or change()); otherwise the problem reopens at the next evaluation")
		}
	}
	if strings.TrimSpace(tr.val("opdata")) == "" && !onlyNodata {
		c.add(tr.line, "opdata", path, "no operational data")
	}
	ev := tr.val("event_name")
	if !strings.Contains(ev, "{ITEM.VALUE") && !strings.Contains(ev, "{ITEM.LASTVALUE") && !strings.Contains(ev, "{?") && !strings.Contains(ev, "{$") {
		c.add(tr.line, "event-value", path, "the event name shows no value or threshold")
	}
}

// hasReason reports whether a description states why a trigger has no
// recovery expression.
func hasReason(desc string) bool {
	i := strings.Index(desc, NoRecoveryMark)
	return i >= 0 && len(strings.TrimSpace(desc[i+len(NoRecoveryMark):])) > 0
}
