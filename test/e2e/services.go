package main

// The templates' services discovery is a dependent rule of tcp.sockets.get:
// it finds the cgroups of the run's namespace that hold at least
// {$TCP.CGROUP.MIN.SOCKETS} TCP sockets (the servers', agents' and test's
// processes, in whatever cgroups the run was started in). Which and how
// many depends on the machine, so the run takes the discovered ones from
// the host's items, as it does for disks, and expects every prototype of
// the rule once per service.

// discoveredServices lists the cgroups for which the host has an item of
// every prototype of the services rule, and those with only some.
func discoveredServices(tg *target) (services, partial []string) {
	if r := tg.spec.rule("{#CGROUP}"); r != nil {
		return r.instances(tg.items)
	}
	return nil, nil
}
