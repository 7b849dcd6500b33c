package commands

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// TestScriptParsesAreBounded: clients that each load a different large
// script at once parse parseSlots of them at a time, so the syntax trees
// held at once do not grow with the number of clients.
func TestScriptParsesAreBounded(t *testing.T) {
	const clients = 40
	var sc scriptCache
	resetPeak(t)
	before := peakRSS(t)
	var wg sync.WaitGroup
	for i := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Flat, so within the nesting bound, and near the size bound:
			// one of the costliest shapes to parse.
			src := fmt.Sprintf("local x = %d", i) + strings.Repeat("+1", (maxScriptBytes-64)/2)
			if _, msg, _ := sc.load(src); msg != "" {
				t.Errorf("script %d: %s", i, msg)
			}
		}()
	}
	wg.Wait()
	grew := peakRSS(t) - before
	t.Logf("%d scripts of %d KiB loaded at once: peak memory grew by %d MiB", clients, maxScriptBytes>>10, grew>>20)
	if grew > 400<<20 {
		t.Errorf("peak memory grew by %d MiB", grew>>20)
	}
}

func resetPeak(t *testing.T) {
	t.Helper()
	if err := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0); err != nil {
		t.Fatal(err)
	}
}

func peakRSS(t *testing.T) int64 {
	t.Helper()
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(status), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb << 10
		}
	}
	t.Fatal("no VmHWM")
	return 0
}
