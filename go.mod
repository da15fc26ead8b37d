module zabbix-agent2-plugin-tcpstatus

go 1.26.0
