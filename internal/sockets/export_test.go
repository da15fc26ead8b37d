package sockets

// Test hooks for the external test package.

// UseLegacy sets whether the netlink source src may try the legacy
// TCPDIAG_GETSOCK request (true: as a fresh source; false: as after the
// kernel refused it).
func UseLegacy(src Source, ok bool) {
	s := src.(*netlinkSource)
	if ok {
		s.legacy.Store(legacyUnknown)
	} else {
		s.legacy.Store(legacyRefused)
	}
}

// LegacyWorks reports whether src has used the legacy request successfully.
func LegacyWorks(src Source) bool {
	return src.(*netlinkSource).legacy.Load() == legacyWorks
}
