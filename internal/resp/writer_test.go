package resp

import (
	"errors"
	"math"
	"strings"
	"testing"
)

// Every method takes from the limit exactly what it appends, in both
// protocols: a reply of exactly the limit fits, one byte more does not.
func TestLimitCountsWhatIsAppended(t *testing.T) {
	tests := []struct {
		name  string
		write func(*Writer)
	}{
		{"Simple", func(w *Writer) { w.Simple("PONG") }},
		{"Simple with a line break", func(w *Writer) { w.Simple("a\r\nb") }},
		{"OK", func(w *Writer) { w.OK() }},
		{"Error", func(w *Writer) { w.Error("ERR no") }},
		{"Int", func(w *Writer) { w.Int(1234567) }},
		{"Int negative", func(w *Writer) { w.Int(-42) }},
		{"Int smallest", func(w *Writer) { w.Int(math.MinInt64) }},
		{"Int largest", func(w *Writer) { w.Int(math.MaxInt64) }},
		{"Bulk", func(w *Writer) { w.Bulk([]byte(strings.Repeat("x", 1000))) }},
		{"Bulk empty", func(w *Writer) { w.Bulk(nil) }},
		{"BulkString", func(w *Writer) { w.BulkString("hello") }},
		{"Verbatim", func(w *Writer) { w.Verbatim(strings.Repeat("y", 99)) }},
		{"Null", func(w *Writer) { w.Null() }},
		{"NullArray", func(w *Writer) { w.NullArray() }},
		{"Array", func(w *Writer) { w.Array(10) }},
		{"Map", func(w *Writer) { w.Map(12) }},
		{"Set", func(w *Writer) { w.Set(0) }},
		{"Value", func(w *Writer) {
			w.Value([]interface{}{nil, "a", []byte("bc"), int64(-7), true, map[interface{}]interface{}{"k": int64(1)}, errors.New("ERR x"), 1.5})
		}},
	}
	for _, proto := range []int{2, 3} {
		for _, tt := range tests {
			var free Writer
			free.Reset(proto)
			tt.write(&free)
			size := int64(len(free.Buf))

			var l Limit
			l.Reset(size)
			w := Writer{Proto: proto, Limit: &l}
			tt.write(&w)
			if w.Over() || l.left != 0 || string(w.Buf) != string(free.Buf) {
				t.Errorf("RESP%d %s with a limit of its size (%d): over %v, %d left, wrote %q, want %q", proto, tt.name, size, w.Over(), l.left, w.Buf, free.Buf)
			}

			l.Reset(size - 1)
			w = Writer{Proto: proto, Limit: &l}
			tt.write(&w)
			if !w.Over() {
				t.Errorf("RESP%d %s with a limit one byte short (%d): not over; wrote %q", proto, tt.name, size-1, w.Buf)
			}
		}
	}
}

// Past the limit a writer drops whole elements, and every element after,
// even one that would fit what is left: a reply is cut short, never left
// with a hole. The writers sharing a limit share it.
func TestLimitIsSharedAndDropsWholeElements(t *testing.T) {
	var l Limit
	l.Reset(20)
	a := Writer{Limit: &l}
	b := Writer{Limit: &l}
	a.Array(3)               // 4 bytes
	a.BulkString("0123456")  // 13 bytes: 17
	b.BulkString("too long") // 14 bytes: over
	a.Int(1)                 // 4 bytes: would fit the 3 left, dropped all the same
	if got := string(a.Buf); got != "*3\r\n$7\r\n0123456\r\n" {
		t.Errorf("first writer: %q", got)
	}
	if len(b.Buf) != 0 || !a.Over() || !b.Over() || !l.Over() {
		t.Errorf("second writer %q, over %v %v %v; want nothing written and all over", b.Buf, a.Over(), b.Over(), l.Over())
	}
	l.Reset(100)
	b.Reset(2)
	b.OK()
	if b.Over() || string(b.Buf) != "+OK\r\n" {
		t.Errorf("after Reset: over %v, wrote %q", b.Over(), b.Buf)
	}
}

// A writer without a limit writes everything, and one with a limit costs
// no allocation per append: a subtraction and a comparison.
func TestLimitCostsNoAllocation(t *testing.T) {
	w := Writer{Buf: make([]byte, 0, 1<<10)}
	w.Bulk(make([]byte, 2<<10))
	if len(w.Buf) != 2<<10+9 || w.Over() {
		t.Fatalf("no limit: %d bytes written, over %v", len(w.Buf), w.Over())
	}
	var l Limit
	w = Writer{Buf: make([]byte, 0, 1<<10), Limit: &l}
	value := []byte("value")
	allocs := testing.AllocsPerRun(100, func() {
		l.Reset(1 << 20)
		w.Reset(2)
		w.Array(2)
		w.Bulk(value)
		w.Int(7)
	})
	if allocs != 0 {
		t.Errorf("%v allocations per reply, want 0", allocs)
	}
}
