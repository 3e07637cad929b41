package localcluster

import "syscall"

// The processes die with the test binary or controlplane, even on SIGKILL.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
