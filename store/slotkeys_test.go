package store

import "testing"

// Every hash slot has a key the readiness check can route, and that key
// hashes to it.
func TestKeyForSlotCoversEverySlot(t *testing.T) {
	for slot := 0; slot < numSlots; slot++ {
		if got := Slot(keyForSlot(slot)); got != slot {
			t.Fatalf("keyForSlot(%d) = %q, which hashes to slot %d", slot, keyForSlot(slot), got)
		}
	}
}
