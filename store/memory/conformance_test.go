package memory_test

import (
	"testing"

	"github.com/heraldhq/herald/store"
	"github.com/heraldhq/herald/store/memory"
	"github.com/heraldhq/herald/store/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(*testing.T) store.Store { return memory.New() })
}

func BenchmarkStore(b *testing.B) {
	storetest.Bench(b, func(*testing.B) store.Store { return memory.New() })
}
