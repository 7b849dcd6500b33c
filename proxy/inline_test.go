package proxy

import (
	"bytes"
	"runtime"
	"strings"
	"testing"
	"unsafe"

	"github.com/tidwall/redcon"
)

// sameAsRedcon fails t unless parseInline answers line (ending in '\n') as
// redcon's reader does: the same words, or an error where redcon has one,
// in its words as the client reads them; an empty line is no words
// (redcon reports it as incomplete).
func sameAsRedcon(t *testing.T, line []byte) {
	t.Helper()
	got, err := parseInline(line)
	cmd, rerr := redcon.Parse(line)
	switch {
	case rerr != nil && strings.Contains(rerr.Error(), "incomplete"):
		if err != nil || len(got) != 0 {
			t.Fatalf("parseInline(%q) = %q, %v; redcon: an empty line", line, got, err)
		}
	case rerr != nil:
		if err == nil || err.Error() != errRedcon(rerr) {
			t.Fatalf("parseInline(%q) = %q, %v; redcon: %v", line, got, err, rerr)
		}
	case err != nil || len(got) != len(cmd.Args):
		t.Fatalf("parseInline(%q) = %q, %v; redcon: %q", line, got, err, cmd.Args)
	default:
		for i := range got {
			if !bytes.Equal(got[i], cmd.Args[i]) {
				t.Fatalf("parseInline(%q) = %q; redcon: %q", line, got, cmd.Args)
			}
		}
	}
}

func TestParseInlineIsRedcons(t *testing.T) {
	for _, s := range []string{
		"", " ", "  ", "PING", "GET k", "GET  k ", " GET k", "GET\tk", "SET a b\r",
		`SET a "b c"`, `SET a "b\"c" d`, `SET a 'b\'c'`, `"" x`, `x ""`, `''`,
		`"a\nb\r\tc\\d\qe"`, `a "b"c`, `a b"c`, `a b'`, `"abc\`, `"abc`, `'abc`, `"a" "b"`, `"a""b"`,
		"a\x00b", "\xff\xfe", `"` + strings.Repeat(" ", 100) + `"`,
	} {
		sameAsRedcon(t, []byte(s+"\n"))
	}
}

// FuzzParseInline holds parseInline to redcon's inline parser. `go test`
// runs the seeds; make fuzz explores.
func FuzzParseInline(f *testing.F) {
	for _, s := range []string{"GET k", `SET a "b\"c" d`, `'a\'b' ""`, `a "b"c`, "  x  ", `"\`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		if len(line) > maxInlineBytes || bytes.IndexByte(line, '\n') >= 0 || bytes.HasPrefix(line, []byte("*")) {
			return // the scanner passes one line, of at most maxInlineBytes, not a multibulk one
		}
		sameAsRedcon(t, append(line, '\n'))
	})
}

// allocated is the bytes f allocates.
func allocated(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// An inline request costs what its words are: one buffer as long as the
// line and one slice header per word. redcon's parser gave every word a
// buffer as long as the rest of the line: a 4 KiB line of one-byte words
// held 4 MiB until it ran (16 clients pipelining 200 such lines each grew
// the proxy's peak RSS by 2,962 MiB), and a line of spaces allocated 8 MiB
// in passing (a thousand of them took 1.68–1.77 s of CPU).
func TestParseInlineAllocatesTheLineOnce(t *testing.T) {
	for name, line := range map[string]string{
		"2047 one-byte words": strings.Repeat("a ", 2047) + "\n",
		"PING and spaces":     "PING" + strings.Repeat(" ", 4090) + "\n",
	} {
		raw := []byte(line)
		var args [][]byte
		ours := allocated(func() { args, _ = parseInline(raw) })
		theirs := allocated(func() { _, _ = redcon.Parse(raw) })
		bound := uint64(len(raw)) + uint64(len(args))*uint64(unsafe.Sizeof(args[0])) + 1024
		t.Logf("%s (%d bytes): parseInline allocated %d bytes, redcon %d", name, len(raw), ours, theirs)
		if ours > bound {
			t.Errorf("%s: parseInline allocated %d bytes, over %d (the line and a slice header per word)", name, ours, bound)
		}
	}
}
