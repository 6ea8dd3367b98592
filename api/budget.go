package api

import (
	"io"
	"sync"
	"time"
)

// Defaults of the intake bounds (Config.ProduceTimeout, MaxInflightBytes).
const (
	DefaultProduceTimeout         = 5 * time.Second
	DefaultMaxInflightBytes int64 = 64 << 20
)

// budget bounds the bytes held by event intake at once. Requests take
// bytes as they read them and give them all back when they end.
type budget struct {
	max  int64
	mu   sync.Mutex
	used int64
}

func newBudget(max int64) *budget { return &budget{max: max} }

// take reserves n bytes, or none when that would go past the bound.
func (b *budget) take(n int64) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.used+n > b.max {
		return false
	}
	b.used += n
	return true
}

func (b *budget) give(n int64) {
	b.mu.Lock()
	b.used -= n
	b.mu.Unlock()
}

// inUse is the bytes reserved now.
func (b *budget) inUse() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.used
}

// errBusy is returned by a budgetReader when the budget is spent.
type errBusy struct{}

func (errBusy) Error() string { return "event intake is at its in-flight byte bound" }

// budgetReader charges every byte it reads to a budget; held is what it
// took, to give back.
type budgetReader struct {
	r    io.Reader
	b    *budget
	held int64
}

func (br *budgetReader) Read(p []byte) (int, error) {
	n, err := br.r.Read(p)
	if n > 0 {
		if !br.b.take(int64(n)) {
			return 0, errBusy{}
		}
		br.held += int64(n)
	}
	return n, err
}
