// Package agent runs real Zabbix agents with the plugin, for the tests, the
// end-to-end run (test/e2e) and the benchmark driver: a private
// zabbix_agent2 (6.0 from Debian bookworm, 7.0 from bookworm-backports) or
// classic zabbix_agentd, with its own directory, loopback port, PID, log,
// control and plugin sockets, optionally as another user (setpriv) and in a
// network namespace (nsenter). It is the one place that starts an agent and
// knows agent 2 6.0's start race (a start that hits it is tried again).
//
// It does not import testing; testkit/agenttest is the thin testing.TB
// layer (skips for missing requirements, cleanup with crash checks).
//
//	a, err := agent.Start(agent.Spec{Bin: agent.V70.Binary(), Version: agent.V70,
//		Dir: dir, Conf: []string{agent.PluginConf(plugin)}})
//	v, err := a.Get("tcp.status[listen]") // through zabbix_get
//	err = a.Stop()                        // also reports crashes
package agent
