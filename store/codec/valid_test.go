package codec

import (
	"bytes"
	"testing"
)

// nested is {"a": v} with v n arrays deep.
func nested(n int) []byte {
	p := append([]byte(`{"a":`), bytes.Repeat([]byte("["), n)...)
	return append(append(p, bytes.Repeat([]byte("]"), n)...), '}')
}

// TestValidJSONDepth: nesting is bounded as encoding/json bounds it, and
// the verdict comes without recursing through the payload's depth. With
// gjson's validator alone, 32 million levels grew the goroutine's stack
// past Go's 1 GB limit: a fatal error that killed the test binary.
func TestValidJSONDepth(t *testing.T) {
	tests := []struct {
		name  string
		depth int // of the whole payload, its object included
		want  bool
	}{
		{"gjson's share", maxGjsonDepth, true},
		{"past gjson's share", maxGjsonDepth + 1, true},
		{"at encoding/json's bound", 10_000, true},
		{"one past it", 10_001, false},
		{"32 million levels (64 MiB)", 32 << 20, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ValidJSON(nested(tt.depth - 1)); got != tt.want {
				t.Errorf("ValidJSON of %d levels = %v, want %v", tt.depth, got, tt.want)
			}
		})
	}
	c := mustNew(t, Options{MaxPayloadBytes: 128 << 20})
	if err := c.Validate(nested(32 << 20)); err != ErrNotJSON {
		t.Errorf("Validate of 32 million levels: %v, want %v", err, ErrNotJSON)
	}
}

// TestValidJSONManyBrackets: a payload past gjson's share of brackets is
// judged by encoding/json, with the same verdict on what matters to a
// session: a long cart is valid, a bad escape or a raw control character
// in it is not.
func TestValidJSONManyBrackets(t *testing.T) {
	cart := bytes.Repeat([]byte(`{"sku":"A-1","qty":[1]},`), maxGjsonDepth)
	valid := append(append([]byte(`{"cart":[`), cart...), `{}]}`...)
	if !ValidJSON(valid) {
		t.Errorf("a cart of %d items: not valid", maxGjsonDepth+1)
	}
	for _, bad := range []string{`"\x"`, "\"\x01\"", `"\u12g4"`, `01`, `[1,]`} {
		p := append(append([]byte(`{"cart":[`), cart...), bad+`]}`...)
		if ValidJSON(p) {
			t.Errorf("a cart ending in %q: valid", bad)
		}
	}
}
