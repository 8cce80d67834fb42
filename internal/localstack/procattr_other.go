//go:build unix && !linux

package localstack

import "syscall"

// childAttributes puts a child in its own process group, so that Stop
// reaches its children too. Only Linux can tie a child's life to its
// parent's; elsewhere Stop must run.
func childAttributes() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}

// signalGroup signals the process group led by pid.
func signalGroup(pid int, sig syscall.Signal) {
	_ = syscall.Kill(-pid, sig)
}
