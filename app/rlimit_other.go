//go:build !linux

package app

// raiseFileLimit does nothing outside Linux (on macOS, for one, the hard
// limit may be unlimited while the kernel caps the soft one lower); Go's
// runtime still raises the soft limit as far as it can at start.
func raiseFileLimit() (fileLimit, error) { return fileLimit{}, nil }
