package proxy

// GCPercent is the garbage collector's target sessproxy runs with unless
// GOGC says otherwise: a collection when the heap has grown by 400% since
// the last, not Go's default 100%. The proxy's live heap is small (buffers
// and connection state) while every request leaves short-lived garbage, so
// at the default the collector runs often enough to show in the tail. At
// pipeline depth 1, redis-benchmark's p99 through the proxy (8 runs each,
// bench/results/2026-11-22-10-gogc-p99.txt) had a median of 2.78 ms for GET
// and 2.91 ms for SET with 100, 2.37 and 2.55 ms with 400; throughput did
// not change. Idle clients make no garbage, so their cost is unchanged
// (TestMemory* run with this value).
const GCPercent = 400

// MemoryLimit is the Go runtime's soft memory limit sessproxy runs with
// unless GOMEMLIMIT says otherwise: the budget for requests and replies in
// flight (server.max_inflight_bytes), plus room for the proxy's own heap
// (memoryBase) and each client's buffers (clientMemory, at max_clients).
// Bytes a batch releases are garbage until the next collection, and with
// GCPercent the next one would come only when the heap has grown fivefold:
// without a limit, a budget of 64 MiB measured over 2 GB of RSS for a
// client pipelining MGETs of 3 KB sessions. The limit makes the collector
// run before the heap passes it; it can still grow past it, when more than
// that is live, at the cost of a collector that runs more often.
//
// What unfinished requests hold past their clients' clientMemory (up to
// half the budget, unfinishedBytes) is not in the sum. It is live only
// under requests sent part-way and stalled, and adding it let the garbage
// of ordinary floods grow with it: TestMemoryHugeMGet, TestMemoryHugeDel
// and TestMemoryPipelinedMGetsUnread peaked at +116 to +122 MB with it,
// past their budget plus 50 MB. When the pool and the budget are both full
// the heap can pass the limit, and the collector runs more often (Go caps
// its share of the CPU at about half) until the stalled clients send the
// rest or reach request_timeout.
func MemoryLimit(opts Options) int64 {
	opts.init()
	return opts.MaxInflightBytes + memoryBase + int64(opts.MaxClients)*clientMemory
}

const (
	// memoryBase leaves the rest of the target (the budget plus 50
	// MB of RSS) to what is not heap: stacks, the runtime, freed pages not
	// yet returned. At 48 MiB, TestMemoryHuge* peaked within 2 MB of that
	// target; at 32 MiB, 20–30 MB under it.
	memoryBase   = 32 << 20
	clientMemory = 16 << 10 // TestMemoryTenThousandIdleClients measures under 10 KB
)
