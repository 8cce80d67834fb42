//go:build unix

package query

import (
	"syscall"
	"time"
)

// processCPU returns the CPU time this process has used (user + system,
// all threads). Benchmarks report it beside wall time because the shared
// build machine is often oversubscribed.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
