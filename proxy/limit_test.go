package proxy

import (
	"fmt"
	"strings"
	"testing"
)

func TestRequestScanner(t *testing.T) {
	const (
		tooLarge  = "max_request_bytes"
		multibulk = "invalid multibulk length"
		bulk      = "invalid bulk length"
	)
	tests := []struct {
		name   string
		stream string
		want   string // in the error; "" for none
	}{
		{"small command", "*2\r\n$3\r\nGET\r\n$5\r\nsess:\r\n", ""},
		{"pipeline of small commands", strings.Repeat("*1\r\n$4\r\nPING\r\n", 100), ""},
		{"huge declared bulk", "*2\r\n$3\r\nGET\r\n$999999999999\r\n", tooLarge},
		{"count over the limit's room", "*999\r\n", tooLarge},
		{"count over Redis's bound", "*1048577\r\n", multibulk},
		{"bulk just over", "*2\r\n$3\r\nSET\r\n$1000\r\n", tooLarge},
		{"bulk that fits", "*2\r\n$3\r\nSET\r\n$900\r\n" + strings.Repeat("x", 900) + "\r\n", ""},
		{"long inline", strings.Repeat("x", 2000) + "\r\n", tooLarge},
		{"inline", "PING\r\nPING\r\n", ""},
		{"count line too long", "*" + strings.Repeat("1", 40) + "\r\n", multibulk},
		{"length line too long", "*1\r\n$" + strings.Repeat("1", 40) + "\r\n", bulk},

		// Frames that crashed or hung redcon: the sum and the product
		// overflowed.
		{"bulk length near 2^63", "*1\r\n$9223372036854775807\r\n", tooLarge},
		{"bulk length 2^63-2", "*1\r\n$9223372036854775806\r\n", tooLarge},
		{"bulk length 2^63-18", "*1\r\n$9223372036854775790\r\n", tooLarge},
		{"second bulk near 2^63", "*2\r\n$3\r\nGET\r\n$9223372036854775807\r\n", tooLarge},
		{"count 2^63-1", "*9223372036854775807\r\n", multibulk},
		{"count whose 6-fold wraps", "*3074457345618258603\r\n$4\r\nPING\r\n", multibulk},
		{"count one past int64", "*9223372036854775808\r\n", multibulk},

		// What redcon refuses, refused first and alike.
		{"empty count", "*\r\n", multibulk},
		{"count without CR", "*1\n$4\r\nPING\r\n", multibulk},
		{"null bulk", "*1\r\n$-1\r\n", bulk},
		{"negative bulk", "*1\r\n$-5\r\nhello\r\n", bulk},
		{"bulk without CR", "*1\r\n$4\nPING\r\n", bulk},
		// What Redis refuses and redcon takes, refused in Redis's words;
		// what Redis skips and redcon refuses, passed (TestProtocolAnswersAsRedis).
		{"count with a sign", "*+1\r\n$4\r\nPING\r\n", multibulk},
		{"count with leading zeros", "*001\r\n$4\r\nPING\r\n", multibulk},
		{"count of -0", "*-0\r\n", multibulk},
		{"count after a space", "* 1\r\n$4\r\nPING\r\n", multibulk},
		{"bulk with a sign", "*1\r\n$+4\r\nPING\r\n", bulk},
		{"bulk with a leading zero", "*1\r\n$04\r\nPING\r\n", bulk},
		{"bulk of -0", "*1\r\n$-0\r\n\r\n", bulk},
		{"zero count", "*0\r\n", ""},
		{"null count", "*-1\r\n", ""},
		{"count of -2^63", "*-9223372036854775808\r\n", ""},
		{"bulk not a number", "*1\r\n$4x\r\nPING\r\n", bulk},
		{"no dollar", "*1\r\n:4\r\nPING\r\n", "expected '$', got ':'"},
		{"newline for a dollar", "*1\r\n\n", "expected '$', got '?'"},
		{"payload longer than announced", "*1\r\n$3\r\nPING\r\n", bulk},
		{"payload without CRLF", "*1\r\n$4\r\nPINGxx", bulk},
		{"empty bulk", "*2\r\n$4\r\nECHO\r\n$0\r\n\r\n", ""},
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
				case tt.want == "" && err != nil:
					t.Fatalf("split %d: unexpected error %v", split, err)
				case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
					t.Fatalf("split %d: err = %v, want %q", split, err, tt.want)
				}
			}
		})
	}
}

func TestRequestScannerBoundsInline(t *testing.T) {
	s := requestScanner{max: 1 << 20}
	err := s.scan([]byte(strings.Repeat("a ", 3000)))
	if err == nil || !strings.Contains(err.Error(), "too big inline request") {
		t.Fatalf("err = %v, want too big inline request", err)
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

// A count below 1 ends its request at once, with no arguments: the
// readers skip it, as Redis does.
func TestRequestScannerEndsCountsBelowOne(t *testing.T) {
	s := requestScanner{max: 1000, trackEnds: true, trackSpans: true}
	stream := "*0\r\n*-1\r\n*1\r\n$4\r\nPING\r\n*-1\r\n"
	if err := s.scan([]byte(stream)); err != nil {
		t.Fatal(err)
	}
	if got, want := fmt.Sprint(s.ends, s.spanEnds, s.state), fmt.Sprint([]int{4, 9, 23, 28}, []int{0, 0, 1, 1}, scanStart); got != want {
		t.Fatalf("ends, spanEnds and state %s; want %s", got, want)
	}
}
