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
