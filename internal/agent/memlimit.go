package agent

import "runtime/debug"

// DefaultStartMemoryLimit is the CLI's soft memory limit for the start
// (--start-memory-limit-mib): at 10,000 pods and 10,000 policies the
// agent's live heap stays well under it, and its peak resident memory
// under 150 MB.
const DefaultStartMemoryLimit = 100 << 20

// LimitStartMemory lowers the Go runtime's soft memory limit to limit
// (bytes) and returns the function that puts the previous one back. A
// limit of 0 or less, or one above the limit in force, changes nothing.
//
// Why: listing the cluster at start allocates several times what the
// agent keeps (the API's pages, decoded objects, the first transaction's
// messages), and with GOGC's headroom on top the heap peaks well above
// the live state. Under a soft limit the GC runs more often while the
// garbage piles up, so the peak follows the live heap instead. Once the
// first ruleset is in the kernel the limit is lifted: kept afterwards, a
// cluster grown past it would make the GC run all the time.
func LimitStartMemory(limit int64) (lift func()) {
	if limit <= 0 {
		return func() {}
	}
	prev := debug.SetMemoryLimit(-1)
	if limit >= prev {
		return func() {}
	}
	debug.SetMemoryLimit(limit)
	return func() { debug.SetMemoryLimit(prev) }
}
