package proxy

import (
	"strings"
	"testing"
)

func TestRequestScanner(t *testing.T) {
	tests := []struct {
		name    string
		stream  string
		tooBig  bool
		badHead bool
	}{
		{"small command", "*2\r\n$3\r\nGET\r\n$5\r\nsess:\r\n", false, false},
		{"pipeline of small commands", strings.Repeat("*1\r\n$4\r\nPING\r\n", 100), false, false},
		{"huge declared bulk", "*2\r\n$3\r\nGET\r\n$999999999999\r\n", true, false},
		{"huge declared count", "*999999999\r\n", true, false},
		{"bulk just over", "*2\r\n$3\r\nSET\r\n$1000\r\n", true, false},
		{"bulk that fits", "*2\r\n$3\r\nSET\r\n$900\r\n" + strings.Repeat("x", 900) + "\r\n", false, false},
		{"long inline", strings.Repeat("x", 2000) + "\r\n", true, false},
		{"inline", "PING\r\nPING\r\n", false, false},
		{"header line too long", "*" + strings.Repeat("1", 40) + "\r\n", false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Feed byte by byte as well as whole: limits must not depend on
			// how the stream is split.
			for _, split := range []int{1, 7, len(tt.stream)} {
				s := requestScanner{max: 1000}
				var err error
				for i := 0; i < len(tt.stream) && err == nil; i += split {
					err = s.scan([]byte(tt.stream[i:min(i+split, len(tt.stream))]))
				}
				switch {
				case tt.tooBig && (err == nil || !strings.Contains(err.Error(), "max_request_bytes")):
					t.Fatalf("split %d: err = %v, want request too large", split, err)
				case tt.badHead && (err == nil || !strings.Contains(err.Error(), "invalid request header")):
					t.Fatalf("split %d: err = %v, want invalid header", split, err)
				case !tt.tooBig && !tt.badHead && err != nil:
					t.Fatalf("split %d: unexpected error %v", split, err)
				}
			}
		})
	}
}

func TestRequestScannerResetsBetweenRequests(t *testing.T) {
	// Many requests that are each under the limit must pass even though
	// together they are far over it.
	s := requestScanner{max: 100}
	cmd := "*3\r\n$3\r\nSET\r\n$6\r\nsess:a\r\n$40\r\n" + strings.Repeat("x", 40) + "\r\n"
	for i := 0; i < 100; i++ {
		if err := s.scan([]byte(cmd)); err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
	}
}
