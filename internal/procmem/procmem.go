// Package procmem reads this process's resident memory from
// /proc/self/status, for the tests that bound what a request may cost
// (Linux only, as the proxy's event loops are).
package procmem

import (
	"os"
	"strconv"
	"strings"
	"testing"
)

// RSS is the process's resident memory in bytes (VmRSS).
func RSS(t testing.TB) int64 { return field(t, "VmRSS:") }

// Peak is the process's peak resident memory in bytes (VmHWM).
func Peak(t testing.TB) int64 { return field(t, "VmHWM:") }

// ResetPeak starts Peak over from the current resident memory.
func ResetPeak(t testing.TB) {
	t.Helper()
	if err := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0); err != nil {
		t.Fatal(err)
	}
}

// field is a "Name:   N kB" line of /proc/self/status, in bytes.
func field(t testing.TB, name string) int64 {
	t.Helper()
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(status), "\n") {
		if v, ok := strings.CutPrefix(line, name); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb << 10
		}
	}
	t.Fatalf("no %s in /proc/self/status", name)
	return 0
}
