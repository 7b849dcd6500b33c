package store

import (
	"bufio"
	"reflect"
	"strings"
	"testing"
)

type recordInvalidations struct{ got [][]string }

func (r *recordInvalidations) Invalidate(keys []string)       { r.got = append(r.got, keys) }
func (r *recordInvalidations) Tracking(string, TrackingState) {}

func TestTrackingConnHandsPushesOverAndReturnsTheReply(t *testing.T) {
	in := ">2\r\n$10\r\ninvalidate\r\n*2\r\n$6\r\nsess:a\r\n$6\r\nsess:b\r\n" +
		">2\r\n$10\r\ninvalidate\r\n_\r\n" +
		">3\r\n$7\r\nmessage\r\n$1\r\nc\r\n$1\r\nm\r\n" +
		"*3\r\n$6\r\nmaster\r\n:10\r\n*0\r\n"
	tc := &trackingConn{r: bufio.NewReader(strings.NewReader(in))}
	h := &recordInvalidations{}
	v, err := tc.reply(h)
	if err != nil {
		t.Fatal(err)
	}
	if want := []interface{}{"master", int64(10), []interface{}{}}; !reflect.DeepEqual(v, want) {
		t.Fatalf("reply %#v, want %#v", v, want)
	}
	if want := [][]string{{"sess:a", "sess:b"}, nil}; !reflect.DeepEqual(h.got, want) {
		t.Fatalf("invalidations %q, want %q", h.got, want)
	}
}

func TestReadRESP3Types(t *testing.T) {
	tests := []struct {
		in   string
		want interface{}
	}{
		{"+OK\r\n", "OK"},
		{"-ERR x\r\n", redisError("ERR x")},
		{":-3\r\n", int64(-3)},
		{"#t\r\n", true},
		{"_\r\n", nil},
		{"$-1\r\n", nil},
		{"=8\r\ntxt:abcd\r\n", "abcd"},
		{"%1\r\n+a\r\n:1\r\n", []interface{}{"a", int64(1)}},
		{"|1\r\n+k\r\n+v\r\n+after\r\n", "after"},
	}
	for _, tt := range tests {
		got, _, err := readRESP3(bufio.NewReader(strings.NewReader(tt.in)))
		if err != nil || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%q: %#v, %v; want %#v", tt.in, got, err, tt.want)
		}
	}
}
