package agent

import (
	"math"
	"runtime/debug"
	"testing"
)

func TestLimitStartMemory(t *testing.T) {
	orig := debug.SetMemoryLimit(-1)
	t.Cleanup(func() { debug.SetMemoryLimit(orig) })
	for _, tc := range []struct {
		name             string
		prev, limit      int64
		during, afterAll int64
	}{
		{"no limit before", math.MaxInt64, 100 << 20, 100 << 20, math.MaxInt64},
		{"looser limit before", 1 << 30, 100 << 20, 100 << 20, 1 << 30},
		{"tighter limit before", 50 << 20, 100 << 20, 50 << 20, 50 << 20},
		{"disabled", math.MaxInt64, 0, math.MaxInt64, math.MaxInt64},
	} {
		t.Run(tc.name, func(t *testing.T) {
			debug.SetMemoryLimit(tc.prev)
			lift := LimitStartMemory(tc.limit)
			if got := debug.SetMemoryLimit(-1); got != tc.during {
				t.Errorf("during start: limit %d, want %d", got, tc.during)
			}
			lift()
			if got := debug.SetMemoryLimit(-1); got != tc.afterAll {
				t.Errorf("after lift: limit %d, want %d", got, tc.afterAll)
			}
		})
	}
}
