//go:build linux

package app

import "syscall"

// raiseFileLimit sets the soft RLIMIT_NOFILE to the hard limit and reports
// both, read back after the change.
func raiseFileLimit() (fileLimit, error) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return fileLimit{}, err
	}
	fl := fileLimit{Before: lim.Cur, Soft: lim.Cur, Hard: lim.Max, Supported: true}
	if lim.Cur >= lim.Max {
		return fl, nil
	}
	lim.Cur = lim.Max
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return fl, err
	}
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return fl, err
	}
	fl.Soft, fl.Hard = lim.Cur, lim.Max
	return fl, nil
}
