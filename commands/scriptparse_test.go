package commands

import (
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/sessproxy/sessproxy/internal/procmem"
)

// TestScriptParsesAreBounded: clients that each load a different large
// script at once parse parseSlots of them at a time, so the syntax trees
// held at once do not grow with the number of clients.
func TestScriptParsesAreBounded(t *testing.T) {
	const clients = 40
	var sc scriptCache
	procmem.ResetPeak(t)
	before := procmem.Peak(t)
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
	grew := procmem.Peak(t) - before
	t.Logf("%d scripts of %d KiB loaded at once: peak memory grew by %d MiB", clients, maxScriptBytes>>10, grew>>20)
	if grew > 400<<20 {
		t.Errorf("peak memory grew by %d MiB", grew>>20)
	}
}
