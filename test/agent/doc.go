// Package agent tests the plugin through real Zabbix agents (agent 2 6.0
// and 7.0, the classic agent with the UserParameter file) started by
// testkit/agenttest: key answers against ss(8) in a network namespace, bad
// keys, the shipped configuration files, and that README.md's generated
// sections match the code (go generate rewrites them).
package agent
