package nlcount

import "runtime"

func lockThread() { runtime.LockOSThread() }
