package main

import (
	"fmt"
	"strings"
)

// The disk templates: block device discovery and I/O items, apart from the
// TCP templates so that a host which has Zabbix's own Linux template (whose
// "Linux block devices" part already watches its disks) does not get them
// twice. One per agent mode, as for TCP, from the same variants.

// diskName is the disk template's name for a variant: "Linux disks by
// Zabbix agent 2" and so on. Zabbix's own are "Linux block devices by
// Zabbix agent[ active]" (6.0): the names differ, as the linter checks.
func diskName(v variant) string {
	return strings.Replace(v.name, "Linux TCP status by ", "Linux disks by ", 1)
}

// diskFile is the disk template's base file name for a variant.
func diskFile(v variant) string {
	return strings.Replace(v.file, "tcpstatus_", "tcpstatus_disk_", 1)
}

// diskVariant is the variant as the disk template's README describes it.
func diskVariant(v variant) variant {
	d := v
	d.file, d.name = diskFile(v), diskName(v)
	d.setup = diskSetupText(d)
	return d
}

func diskSetupText(v variant) string {
	check := "2. Restart the agent and check the key: `zabbix_get -s <host> -k disk.get.all`.\n"
	if v.active {
		check = "2. In `" + v.confPath + "` set `ServerActive=` to the server (or proxy) and `Hostname=` to the host's name in Zabbix exactly; restart the agent. Check the key locally with `" +
			map[bool]string{true: "zabbix_agentd", false: "zabbix_agent2"}[v.classic] + " -t disk.get.all`.\n"
	}
	return v.install + check +
		"3. Import `" + v.file + ".xml` (the Debian package installs it as `/usr/share/zabbix-agent2-plugin-tcpstatus/templates/" + v.file + ".xml`) and link the template to hosts that do **not** have Zabbix's own \"Linux by Zabbix agent\" template (or its \"Linux block devices\" part), which already watches their disks with the same defaults (see templates/README.md, \"Which templates\").\n" +
		"4. Adjust the macros below on the host; per-disk thresholds go in context macros such as `{$DISK.READ.AWAIT.MAX.WARN:\"sda\"}`."
}

// diskLLDScript keeps the discovery fields of disk.get.all for the disk
// discovery rule.
const diskLLDScript = `var devs = JSON.parse(value), out = [];
for (var i = 0; i < devs.length; i++) {
    var d = devs[i];
    out.push({devname: d.devname, devtype: d.devtype, dmname: d.dmname, model: d.model, serial: d.serial, rotational: d.rotational});
}
return JSON.stringify(out);`

// buildDisk describes the disk template of a variant.
func buildDisk(v variant) *Template {
	T := diskName(v)
	ref := func(key string) string { return "/" + T + "/" + key }
	t := &Template{
		Tech:  T,
		Name:  T,
		Group: "Templates/Operating systems",
		Description: "Disk I/O of a Linux host: rates, throughput, wait times, utilization and queue of each block device, collected by " + v.source + " from one read of /proc/diskstats and sysfs per minute, however many disks are discovered.\n\n" +
			"For hosts without Zabbix's own \"Linux by Zabbix agent\" template, whose block device part watches the same; its defaults are the same (20 ms wait, no utilization trigger).\n\n" +
			"Setup and macros: templates/" + diskFile(v) + ".README.md.",
		Tags: tags("class", "os", "target", "linux"),
	}
	// ---- block devices ---------------------------------------------------
	t.Items = append(t.Items, polled(v, &Item{
		Name: "Disk: Get block device stats", Key: "disk.get.all", Delay: "1m", History: "0", Trends: "0", ValueType: "TEXT",
		Description: "Every block device with its discovery fields (sysfs) and I/O counters (/proc/diskstats), as JSON, from one read. Master item of the disk discovery and of every discovered disk's items; no history of its own.",
		Tags:        tags("component", "raw"),
	}))

	t.Rules = []*Rule{diskRule(ref)}
	t.Dashboards = []*Dashboard{{
		Name: "Disk I/O",
		Pages: []Page{
			{Name: "Disks", Widgets: []Widget{
				{Graph: "Disk {#DEVNAME}: Read/write rates", Prototype: true, W: 12, H: 5},
				{Graph: "Disk {#DEVNAME}: Read/write throughput", Prototype: true, X: 12, W: 12, H: 5},
				{Graph: "Disk {#DEVNAME}: Utilization and queue", Prototype: true, Y: 5, W: 12, H: 5},
				{Graph: "Disk {#DEVNAME}: Average waiting time", Prototype: true, X: 12, Y: 5, W: 12, H: 5},
			}},
		},
	}}
	t.Macros = diskMacros()
	return t
}

func diskMacros() []Macro {
	return []Macro{
		{"{$DISK.DEVNAME.MATCHES}", ".+", "Disk discovery: discover block devices whose name matches this regex."},
		{"{$DISK.DEVNAME.NOT_MATCHES}", "^(loop|ram|zram|sr|fd|nbd|dm-)[0-9]+$", "Disk discovery: skip block devices whose name matches this regex (loop, RAM, zram, optical, floppy, NBD and device-mapper devices)."},
		{"{$DISK.DEVTYPE.MATCHES}", "^disk$", "Disk discovery: discover devices whose type (disk or partition) matches this regex."},
		{"{$DISK.READ.AWAIT.MAX.WARN}", "20", "Average read wait time in ms over 15 minutes above which \"Response time is high\" fires. Per disk: {$DISK.READ.AWAIT.MAX.WARN:\"<devname>\"}."},
		{"{$DISK.WRITE.AWAIT.MAX.WARN}", "20", "Average write wait time in ms over 15 minutes above which \"Response time is high\" fires. Per disk: {$DISK.WRITE.AWAIT.MAX.WARN:\"<devname>\"}."},
	}
}

func diskRule(ref func(string) string) *Rule {
	const master = "disk.get.all"
	r := &Rule{
		// The key is 0.1.0's (no agent key any more, the rule's name on
		// the host), so host-level overrides keyed on it still apply.
		Name: "Disk discovery", Key: "disk.discovery", Type: "DEPENDENT", Master: master, Lifetime: "7d",
		Description: "Block devices from disk.get.all (sysfs). By default whole disks only ({$DISK.DEVTYPE.MATCHES}), without loop, RAM, zram, optical, floppy, NBD and device-mapper devices ({$DISK.DEVNAME.NOT_MATCHES}). " +
			"Follows its master every minute, but only a changed list of devices (or once a day) is processed. A device that disappears keeps its items for 7 days.",
		Filter: []Cond{
			{Macro: "{#DEVNAME}", Value: "{$DISK.DEVNAME.MATCHES}"},
			{Macro: "{#DEVNAME}", Value: "{$DISK.DEVNAME.NOT_MATCHES}", Operator: "NOT_MATCHES_REGEX"},
			{Macro: "{#DEVTYPE}", Value: "{$DISK.DEVTYPE.MATCHES}"},
		},
		MacroPaths: [][2]string{
			{"{#DEVNAME}", "$.devname"}, {"{#DEVTYPE}", "$.devtype"}, {"{#DMNAME}", "$.dmname"},
			{"{#MODEL}", "$.model"}, {"{#ROTATIONAL}", "$.rotational"}, {"{#SERIAL}", "$.serial"},
		},
		Pre: []Step{
			// Keep the discovery fields only, so that the counters, which
			// change every minute, do not defeat the discard below.
			{Type: "JAVASCRIPT", Params: []string{diskLLDScript}},
			{Type: "DISCARD_UNCHANGED_HEARTBEAT", Params: []string{"1d"}},
		},
	}
	diskTags := func(kv ...string) []Tag { return append(tags(kv...), Tag{"disk", "{#DEVNAME}"}) }
	// As for ports: one dependent prototype per disk picks the device out
	// of disk.get.all. A device
	// that is gone is absent: no value (a 0 would draw an idle disk that
	// does not exist).
	const dev = "disk.get.all.device[{#DEVNAME}]"
	r.Items = append(r.Items, &Item{
		Name: "Disk {#DEVNAME}: Get stats", Type: "DEPENDENT", Key: dev, Delay: "0", History: "0", Trends: "0", ValueType: "TEXT",
		Description: "I/O counters of {#DEVNAME} (/proc/diskstats): its object in the answer of disk.get.all (no agent request of its own). Master item of the disk's items; no history of its own.",
		Pre:         []Step{{Type: "JSONPATH", Params: []string{`$[?(@.devname=="{#DEVNAME}")].first()`}, ErrHandler: "DISCARD_VALUE"}},
		Master:      master,
		Tags:        diskTags("component", "raw"),
	})
	add := func(it *Item) {
		it.Tags = diskTags("component", "storage")
		r.Items = append(r.Items, it)
	}
	field := func(f string) Step { return jsonpath("$." + f) }
	for _, d := range []struct{ dir, Dir string }{{"read", "Read"}, {"write", "Write"}} {
		add(dep(dev, "disk."+d.dir+".rate[{#DEVNAME}]", "Disk {#DEVNAME}: "+d.Dir+" rate", "!r/s", "FLOAT",
			d.Dir+" requests completed per second (r/s, w/s in iostat).", field(d.dir+"_ios"), perSecond))
		add(dep(dev, "disk."+d.dir+".bytes.rate[{#DEVNAME}]", "Disk {#DEVNAME}: "+d.Dir+" throughput", "Bps", "FLOAT",
			"Bytes "+map[string]string{"read": "read", "write": "written"}[d.dir]+" per second (512-byte sectors × 512).", field(d.dir+"_sectors"), perSecond, multiplier("512")))
		add(dep(dev, "disk."+d.dir+".time.rate[{#DEVNAME}]", "Disk {#DEVNAME}: "+d.Dir+" time", "!ms/s", "FLOAT",
			"Milliseconds spent on "+d.dir+" requests per second of wall time, summed over requests in parallel. Divided by the request rate it gives the average wait.", field(d.dir+"_ticks_ms"), perSecond))
	}
	add(dep(dev, "disk.util[{#DEVNAME}]", "Disk {#DEVNAME}: Utilization", "%", "FLOAT",
		"Percent of time the device had I/O in flight (%util in iostat; io_ticks per second ÷ 10). Near 100% a single-queue disk is saturated; SSDs and arrays serve requests in parallel and can do more.", field("io_ticks_ms"), perSecond, multiplier("0.1")))
	add(dep(dev, "disk.queue[{#DEVNAME}]", "Disk {#DEVNAME}: Average queue size", "", "FLOAT",
		"Average number of requests queued or in service (aqu-sz in iostat; weighted time in queue per second ÷ 1000).", field("time_in_queue_ms"), perSecond, multiplier("0.001")))
	add(dep(dev, "disk.in_flight[{#DEVNAME}]", "Disk {#DEVNAME}: Requests in flight", "", "",
		"Requests issued to the device and not yet completed, at the moment of the check.", field("in_flight")))
	for _, d := range []string{"read", "write"} {
		rate := "disk." + d + ".rate[{#DEVNAME}]"
		tm := "disk." + d + ".time.rate[{#DEVNAME}]"
		// Calculated by the server from the two rates: no agent request.
		add(&Item{
			Name: "Disk {#DEVNAME}: " + strings.ToUpper(d[:1]) + d[1:] + " request avg waiting time", Type: "CALCULATED", Key: "disk." + d + ".await[{#DEVNAME}]",
			Delay: "1m", History: "7d", ValueType: "FLOAT", Units: "!ms",
			Params:      fmt.Sprintf("last(//%s)/(last(//%s)+(last(//%s)=0))", tm, rate, rate),
			Description: "Average time a " + d + " request took, queueing included (" + d[:1] + "_await in iostat): time spent on " + d + "s ÷ " + d + "s completed, over the last interval; 0 when there were none. Calculated by the server, no agent request.",
		})
	}

	await := &Trigger{
		Expr: "min(" + ref("disk.read.await[{#DEVNAME}]") + ",15m)>{$DISK.READ.AWAIT.MAX.WARN:\"{#DEVNAME}\"} or " +
			"min(" + ref("disk.write.await[{#DEVNAME}]") + ",15m)>{$DISK.WRITE.AWAIT.MAX.WARN:\"{#DEVNAME}\"}",
		Recovery: "max(" + ref("disk.read.await[{#DEVNAME}]") + ",15m)<={$DISK.READ.AWAIT.MAX.WARN:\"{#DEVNAME}\"} and " +
			"max(" + ref("disk.write.await[{#DEVNAME}]") + ",15m)<={$DISK.WRITE.AWAIT.MAX.WARN:\"{#DEVNAME}\"}",
		Why:       "Average wait per request, queueing included; 20 ms for 15 minutes, as in Zabbix's own Linux template ({$VFS.DEV.READ.AWAIT.WARN}, {$VFS.DEV.WRITE.AWAIT.WARN}), is slow for an SSD and a busy spinning disk alike. Recovery needs 15 minutes with both at or below their thresholds. No trigger on utilization: %util counts time with any request in flight, so SSDs, NVMe, RAID and virtio disks, which serve many at once, show 100% long before they are saturated (Zabbix's own template has none either).",
		Name:      "Disk {#DEVNAME}: Response time is high",
		EventName: "Disk {#DEVNAME}: Response time is high (read over {$DISK.READ.AWAIT.MAX.WARN:\"{#DEVNAME}\"}ms or write over {$DISK.WRITE.AWAIT.MAX.WARN:\"{#DEVNAME}\"}ms for 15m)",
		Opdata:    "Read: {ITEM.LASTVALUE1}, write: {ITEM.LASTVALUE2}", Priority: "WARNING",
		Description: "Requests to {#DEVNAME} take long on average, queueing included: the device is overloaded or failing.",
		Tags:        tags("scope", "performance"),
	}
	r.Triggers = []*Trigger{await}

	r.Graphs = []*Graph{
		{Name: "Disk {#DEVNAME}: Read/write rates", Items: []GraphItem{
			{Key: "disk.read.rate[{#DEVNAME}]", Color: "1A7C11"},
			{Key: "disk.write.rate[{#DEVNAME}]", Color: "2774A4"},
		}},
		{Name: "Disk {#DEVNAME}: Read/write throughput", Items: []GraphItem{
			{Key: "disk.read.bytes.rate[{#DEVNAME}]", Color: "1A7C11"},
			{Key: "disk.write.bytes.rate[{#DEVNAME}]", Color: "2774A4"},
		}},
		{Name: "Disk {#DEVNAME}: Average waiting time", Items: []GraphItem{
			{Key: "disk.read.await[{#DEVNAME}]", Color: "1A7C11"},
			{Key: "disk.write.await[{#DEVNAME}]", Color: "2774A4"},
		}},
		{Name: "Disk {#DEVNAME}: Utilization and queue", Items: []GraphItem{
			{Key: "disk.util[{#DEVNAME}]", Color: "F63100", DrawType: "FILLED_REGION"},
			{Key: "disk.queue[{#DEVNAME}]", Color: "2774A4", Right: true},
		}},
	}
	return r
}
