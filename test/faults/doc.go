// Package faults holds the fault matrix of the plugin: each test puts the
// plugin, alone or inside a real Zabbix agent 2 (testkit/agenttest), into
// one failure (corrupt or truncated frames, EOF mid-request, agent restart,
// 1000 concurrent requests, a slow or unreadable /proc, no IPv6, processes
// vanishing during discovery, netlink refused, signals, a panicking handler,
// a bad configuration) and checks that the agent keeps running and the item
// gets a clear error instead.
//
// The plugin-side rows drive the plugin binary the way the agent does: the
// test listens on a Unix socket, starts the plugin with that socket path and
// "false" (operational phase), and exchanges frames with it.
//
// Rows that need root, network namespaces or the agents skip without them,
// and fail instead under TCPSTATUS_REQUIRE_AGENT=1 (CI).
package faults
