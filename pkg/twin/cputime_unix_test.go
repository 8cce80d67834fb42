//go:build unix

package twin

import (
	"syscall"
	"time"
)

// processCPUTime returns the user+system CPU time the process has used. The
// benchmarks report it per operation next to ns/op because wall time on a
// shared, loaded machine mostly measures the other tenants.
func processCPUTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
