package proxy

import (
	"strconv"
	"testing"
)

// string2ll is Redis's rule for a count or a length (util.c): it takes
// exactly the numbers it would write itself, which are strconv's. Not
// strconv.ParseInt alone, which redcon's reader uses: it also takes "+5",
// "007" and "-0", and Redis refuses those requests
// (TestProtocolAnswersAsRedis).
func string2ll(s string) (int64, bool) {
	n, err := strconv.ParseInt(s, 10, 64)
	return n, err == nil && strconv.FormatInt(n, 10) == s
}

// TestHeaderIntIsRedisString2ll: the scanner's number parser answers as
// Redis's does.
func TestHeaderIntIsRedisString2ll(t *testing.T) {
	tests := []struct {
		in   string
		want int64
		ok   bool
	}{
		{"0", 0, true},
		{"7", 7, true},
		{"-1", -1, true},
		{"9223372036854775807", 9223372036854775807, true},
		{"-9223372036854775808", -9223372036854775808, true},
		{"", 0, false},
		{"-", 0, false},
		{"+", 0, false},
		{"+5", 0, false},
		{"+0", 0, false},
		{"-0", 0, false},
		{"00", 0, false},
		{"007", 0, false},
		{"-01", 0, false},
		{" 1", 0, false},
		{"1 ", 0, false},
		{"9223372036854775808", 0, false},
		{"-9223372036854775809", 0, false},
	}
	for _, tt := range tests {
		if got, ok := headerInt([]byte(tt.in)); got != tt.want || ok != tt.ok {
			t.Errorf("headerInt(%q) = %d, %v; want %d, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
	inputs := []string{
		"0000000000000000000000000000001", "+9223372036854775807", "18446744073709551615",
		"18446744073709551616", "99999999999999999999", "922337203685477580", "9223372036854775799",
		"1_000", "0x10", "1e3", "--1", "+-1", "-+1", "١",
	}
	for n := int64(1); n > 0 && n < 1<<62; n *= 7 {
		inputs = append(inputs, strconv.FormatInt(n, 10), strconv.FormatInt(-n, 10), strconv.FormatInt(n-1, 10))
	}
	for _, s := range inputs {
		want, wantOK := string2ll(s)
		if got, ok := headerInt([]byte(s)); ok != wantOK || ok && got != want {
			t.Errorf("headerInt(%q) = %d, %v; string2ll: %d, %v", s, got, ok, want, wantOK)
		}
	}
}

// FuzzHeaderInt: any bytes, the same answers as Redis's string2ll. Seeds
// only in go test; explore with go test -run '^$' -fuzz FuzzHeaderInt ./proxy/
func FuzzHeaderInt(f *testing.F) {
	for _, s := range []string{"0", "-9223372036854775808", "9223372036854775808", "+007", "1a", "-0", "01"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		want, wantOK := string2ll(string(b))
		if got, ok := headerInt(b); ok != wantOK || ok && got != want {
			t.Fatalf("headerInt(%q) = %d, %v; string2ll: %d, %v", b, got, ok, want, wantOK)
		}
	})
}
