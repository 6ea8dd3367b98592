package store

import "sync"

// Fences is the fencing registry of a store whose writers all live in one
// process (the memory and embedded stores): the current epoch of each
// scope, in memory. A store takes an epoch in Fence and checks it, under
// the same lock as its write, at the start of every Append, so an append
// of a fenced Writer is refused before it changes anything. The zero value
// is ready to use; it is safe for concurrent use.
type Fences struct {
	mu     sync.Mutex
	epochs map[string]uint64
}

// Take starts a new epoch of scope and returns it; earlier epochs of scope
// are fenced from now on.
func (f *Fences) Take(scope string) uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.epochs == nil {
		f.epochs = make(map[string]uint64)
	}
	f.epochs[scope]++
	return f.epochs[scope]
}

// Check returns ErrFenced unless epoch is the current epoch of scope.
func (f *Fences) Check(scope string, epoch uint64) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.epochs[scope] != epoch {
		return ErrFenced
	}
	return nil
}
