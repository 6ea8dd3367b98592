package lograte

import (
	"os"
	"syscall"
	"testing"
)

// captureStderr runs f with file descriptor 2 (where go-redis's default
// logger, made at init over os.Stderr, writes) pointed at a temporary
// file, and returns what was written there.
func captureStderr(t *testing.T, f func()) string {
	t.Helper()
	tmp, err := os.CreateTemp(t.TempDir(), "stderr")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tmp.Close() }()
	saved, err := syscall.Dup(2)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = syscall.Close(saved) }()
	if err := syscall.Dup3(int(tmp.Fd()), 2, 0); err != nil {
		t.Fatal(err)
	}
	func() {
		defer func() { _ = syscall.Dup3(saved, 2, 0) }()
		f()
	}()
	raw, err := os.ReadFile(tmp.Name())
	if err != nil {
		t.Fatal(err)
	}
	return string(raw)
}
