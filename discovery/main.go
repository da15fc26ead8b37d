// Command tcpstatus-discovery answers one item key of the TCPStatus plugin
// from the command line, with the plugin's own code: the classic Zabbix agent
// runs it from UserParameter lines (conf/userparameter_tcpstatus.conf),
// people run it to see what the plugin would return.
//
//	tcpstatus-discovery 'tcp.status[timewait]'
//	tcpstatus-discovery tcp.port.discovery
//	tcpstatus-discovery --path.procfs=/host/proc 'disk.get[sda]'
//	tcpstatus-discovery -- tcp.status timewait 80   (parameters as arguments)
//
// On success it prints the value and exits 0. When the key fails it prints
// "ZBX_NOTSUPPORTED: <reason>" on standard output and exits 1; usage errors
// go to standard error with exit status 2. Nothing is written to standard
// error otherwise (the classic agent would append it to the value) unless
// --verbose asks for log lines.
package main

import "os"

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}
