package proxy

import (
	"strconv"
	"testing"
)

// TestHeaderIntIsParseInt: the scanner's number parser answers as
// strconv.ParseInt(s, 10, 64) does, which is what redcon's reader accepts.
func TestHeaderIntIsParseInt(t *testing.T) {
	inputs := []string{
		"", "+", "-", "0", "-0", "+0", "7", "+5", "-1", "007", "0000000000000000000000000000001",
		"9223372036854775807", "9223372036854775808", "-9223372036854775808", "-9223372036854775809",
		"+9223372036854775807", "18446744073709551615", "18446744073709551616", "99999999999999999999",
		"922337203685477580", "9223372036854775799", "1_000", "0x10", "1e3", " 1", "1 ", "--1", "+-1", "١",
	}
	for n := int64(1); n > 0 && n < 1<<62; n *= 7 {
		inputs = append(inputs, strconv.FormatInt(n, 10), strconv.FormatInt(-n, 10), strconv.FormatInt(n-1, 10))
	}
	for _, s := range inputs {
		want, err := strconv.ParseInt(s, 10, 64)
		got, ok := headerInt([]byte(s))
		if ok != (err == nil) || ok && got != want {
			t.Errorf("headerInt(%q) = %d, %v; ParseInt: %d, %v", s, got, ok, want, err)
		}
	}
}

// FuzzHeaderInt: any bytes, the same answers as strconv.ParseInt. Seeds
// only in go test; explore with go test -run '^$' -fuzz FuzzHeaderInt ./proxy/
func FuzzHeaderInt(f *testing.F) {
	for _, s := range []string{"0", "-9223372036854775808", "9223372036854775808", "+007", "1a"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		want, err := strconv.ParseInt(string(b), 10, 64)
		got, ok := headerInt(b)
		if ok != (err == nil) || ok && got != want {
			t.Fatalf("headerInt(%q) = %d, %v; ParseInt: %d, %v", b, got, ok, want, err)
		}
	})
}
