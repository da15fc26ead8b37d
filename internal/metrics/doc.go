// Package metrics is the plugin's key table and what answers it: one Metric
// per item key (keys_*.go, one file per concern) with its parameters, its
// description and its handler; the parsing of parameters and the
// Zabbix-style errors an operator reads ("Invalid first parameter: ...");
// the snapshot cache that lets requests arriving together share one
// socket-table read; and the plugin's configuration (ParseConfig, the
// Plugins.TCPStatus.* options).
//
// An Exporter built by New answers Export(ctx, key, params) for both
// binaries: the agent 2 plugin (through agentproto.Serve) and
// tcpstatus-discovery. Its key table also drives the plugin's -h, the
// command's usage and the README's key list. No handler builds a path from
// a parameter or runs a program.
package metrics
