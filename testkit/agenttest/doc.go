// Package agenttest is the testing.TB layer over testkit/agent: a private
// zabbix_agent2 (6.0, 7.0) with the plugin built from this tree, or the
// classic zabbix_agentd with a UserParameter file, run as user zabbix like
// the Debian service and stopped (and checked for crashes) when the test
// ends.
//
//	func TestSomething(t *testing.T) {
//		for _, v := range agenttest.Versions() {
//			t.Run(string(v), func(t *testing.T) {
//				a := agenttest.Start(t, v, agenttest.WithConf("Plugins.TCPStatus.CacheTTL=0"))
//				got, err := a.Get("tcp.status[listen]")      // through zabbix_get
//				got, err = a.Test("tcp.status[listen]")      // zabbix_agent2 -t, own sockets
//				...
//			})
//		}
//	}
//
// Requirements: root (to switch to user zabbix and to enter network
// namespaces), the agents and zabbix_get as scripts/install-deps.sh installs
// them (7.0 and zabbix_get under $TCPSTATUS_CACHE, default
// /var/cache/tcpstatus-test), setpriv and, for InNetns, nsenter (both
// util-linux). When something is missing the test is skipped, or fails when
// TCPSTATUS_REQUIRE_AGENT=1 (CI). Agents are not started in -short mode.
package agenttest
