package redistest

import "syscall"

// sysProcAttr asks the kernel to SIGKILL redis-server when the test binary dies, so a
// test that panics or hits `go test -timeout` does not leave servers running.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
