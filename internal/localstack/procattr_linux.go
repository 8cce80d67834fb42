package localstack

import "syscall"

// childAttributes puts a child in its own process group, so that Stop
// reaches its children too, and has the kernel kill it when this process
// dies, so that an interrupted demo or test leaves nothing running.
func childAttributes() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

// signalGroup signals the process group led by pid.
func signalGroup(pid int, sig syscall.Signal) {
	_ = syscall.Kill(-pid, sig)
}
