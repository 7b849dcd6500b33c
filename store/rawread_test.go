package store

import (
	"bufio"
	"errors"
	"io"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"
)

// scanWant is what an operation of a raw read should end with.
type scanWant struct {
	data string
	err  error
}

// rawReadOf is a raw read of n operations, operation i bounded by
// rooms[i] (nil: not bounded).
func rawReadOf(rooms []*Room) *rawRead {
	ops := make([]op, len(rooms))
	idx := make([]int, len(rooms))
	keys := make([]string, len(rooms))
	for i := range ops {
		ops[i] = op{kind: opRead, res: &opResult{err: errNoResult}, room: rooms[i]}
		idx[i], keys[i] = i, "k"+strconv.Itoa(i)
	}
	return newRawRead(ops, idx, keys)
}

func room(n int64) *Room {
	r := new(Room)
	r.Reset(n)
	return r
}

// feedWrites hands reply to s in the chunks cut at the offsets at.
func feedWrites(s *readScanner, reply string, at ...int) error {
	from := 0
	for _, to := range append(at, len(reply)) {
		if _, err := s.Write([]byte(reply[from:to])); err != nil {
			return err
		}
		from = to
	}
	return nil
}

// feedLikeGoRedis hands reply to s as go-redis's ReadRawReplyWriteTo
// does: each line with Write, then its CRLF; a bulk string's bytes and
// CRLF with io.CopyN from a bufio.Reader (small, so reads come in
// pieces).
func feedLikeGoRedis(s *readScanner, reply string) error {
	br := bufio.NewReaderSize(strings.NewReader(reply), 16)
	var one func() error
	one = func() error {
		line, err := br.ReadString('\n')
		if err != nil {
			return err
		}
		line = strings.TrimSuffix(line, "\r\n")
		if _, err := s.Write([]byte(line)); err != nil {
			return err
		}
		if _, err := s.Write([]byte("\r\n")); err != nil {
			return err
		}
		n, _ := strconv.Atoi(line[1:])
		switch {
		case line[0] == '$' && n >= 0:
			_, err := io.CopyN(s, br, int64(n)+2)
			return err
		case line[0] == '*':
			for range n {
				if err := one(); err != nil {
					return err
				}
			}
		}
		return nil
	}
	return one()
}

func checkScan(t *testing.T, how string, r *rawRead, err error, want []scanWant, wantErr string) {
	t.Helper()
	if wantErr != "" {
		if err == nil || !strings.Contains(err.Error(), wantErr) {
			t.Fatalf("%s: error %v, want %q", how, err, wantErr)
		}
		return
	}
	if err != nil || !r.scan.complete {
		t.Fatalf("%s: error %v, complete %v", how, err, r.scan.complete)
	}
	for i, w := range want {
		res := r.scan.ops[i].res
		if string(res.data) != w.data || !errors.Is(res.err, w.err) || (w.err == nil && res.data == nil) {
			t.Fatalf("%s: key %d: %q %v, want %q %v", how, i, res.data, res.err, w.data, w.err)
		}
	}
}

func TestReadScannerGivesEachKeyItsValue(t *testing.T) {
	big := strings.Repeat("v", 40)
	tests := []struct {
		name    string
		rooms   func() []*Room
		reply   string
		want    []scanWant
		wantErr string
	}{
		{"a GET's value", func() []*Room { return []*Room{nil} }, "$3\r\nabc\r\n", []scanWant{{"abc", nil}}, ""},
		{"a GET's empty value", func() []*Room { return []*Room{room(10)} }, "$0\r\n\r\n", []scanWant{{"", nil}}, ""},
		{"a GET's nil", func() []*Room { return []*Room{nil} }, "$-1\r\n", []scanWant{{"", redis.Nil}}, ""},
		{"a GET's RESP3 null", func() []*Room { return []*Room{nil} }, "_\r\n", []scanWant{{"", redis.Nil}}, ""},
		{"a GET's WRONGTYPE is the command's error", func() []*Room { return []*Room{nil} },
			"-WRONGTYPE Operation against a key holding the wrong kind of value\r\n", nil, "WRONGTYPE"},
		{"a GET past its room is skipped", func() []*Room { return []*Room{room(39)} }, "$40\r\n" + big + "\r\n", []scanWant{{"", ErrReplyTooLarge}}, ""},
		{"a GET that fills its room exactly", func() []*Room { return []*Room{room(40)} }, "$40\r\n" + big + "\r\n", []scanWant{{big, nil}}, ""},
		{"an MGET's values and nils", func() []*Room { return []*Room{nil, nil, nil, nil} },
			"*4\r\n$1\r\na\r\n$-1\r\n$0\r\n\r\n$2\r\nbc\r\n", []scanWant{{"a", nil}, {"", redis.Nil}, {"", nil}, {"bc", nil}}, ""},
		{"an MGET's nil for a key that is not a string", func() []*Room { return []*Room{nil, nil} },
			"*2\r\n$-1\r\n$1\r\nx\r\n", []scanWant{{"", redis.Nil}, {"x", nil}}, ""},
		{"an MGET of several clients, each charged to its own room", func() []*Room {
			a, b := room(50), room(100)
			return []*Room{a, b, a, b, a}
		}, "*5\r\n$40\r\n" + big + "\r\n$40\r\n" + big + "\r\n$40\r\n" + big + "\r\n$40\r\n" + big + "\r\n$5\r\nsmall\r\n",
			// The third key does not fit in a's room, and what did not fit
			// stays charged: a's fifth, small, does not fit either.
			[]scanWant{{big, nil}, {big, nil}, {"", ErrReplyTooLarge}, {big, nil}, {"", ErrReplyTooLarge}}, ""},
		{"an MGET's error is the command's error", func() []*Room { return []*Room{nil, nil} },
			"-ERR max number of clients reached\r\n", nil, "max number of clients"},
		{"an MGET answered with too many elements", func() []*Room { return []*Room{nil, nil} },
			"*3\r\n$-1\r\n$-1\r\n$-1\r\n", nil, "unexpected reply to MGET"},
		{"an integer where a value belongs", func() []*Room { return []*Room{nil, nil} },
			"*2\r\n:1\r\n$-1\r\n", nil, "unexpected reply"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := rawReadOf(tt.rooms())
			checkScan(t, "one write", r, feedWrites(&r.scan, tt.reply), tt.want, tt.wantErr)
			for cut := 1; cut < len(tt.reply); cut++ {
				r := rawReadOf(tt.rooms())
				checkScan(t, "cut at "+strconv.Itoa(cut), r, feedWrites(&r.scan, tt.reply, cut), tt.want, tt.wantErr)
			}
			bytes := make([]int, 0, len(tt.reply))
			for i := 1; i < len(tt.reply); i++ {
				bytes = append(bytes, i)
			}
			r = rawReadOf(tt.rooms())
			checkScan(t, "byte by byte", r, feedWrites(&r.scan, tt.reply, bytes...), tt.want, tt.wantErr)
			r = rawReadOf(tt.rooms())
			checkScan(t, "as go-redis streams it", r, feedLikeGoRedis(&r.scan, tt.reply), tt.want, tt.wantErr)
		})
	}
}

// The scanner starts over with each reply, so a call sent again (recovery)
// reads its second reply afresh.
func TestReadScannerStartsOverWithEachReply(t *testing.T) {
	r := rawReadOf([]*Room{nil, nil})
	for _, reply := range []string{"*2\r\n$1\r\na\r\n$-1\r\n", "*2\r\n$-1\r\n$1\r\nb\r\n"} {
		if err := feedWrites(&r.scan, reply); err != nil {
			t.Fatal(err)
		}
	}
	checkScan(t, "second reply", r, nil, []scanWant{{"", redis.Nil}, {"b", nil}}, "")
	if r.scan.received != 32+1 {
		t.Errorf("received %d, want the second reply's 33", r.scan.received)
	}
}

// valueScanner gives any reply as go-redis would, however the bytes are
// cut, and skips a bulk string past its room (HashReadReply).
func TestValueScannerReadsAnyReply(t *testing.T) {
	tests := []struct {
		name     string
		room     int64 // 0: no room given
		reply    string
		want     interface{}
		tooLarge bool
	}{
		{"a hash's bulk string", 0, "*2\r\n:1\r\n$3\r\nabc\r\n", []interface{}{int64(1), "abc"}, false},
		{"no hash", 0, "*1\r\n:0\r\n", []interface{}{int64(0)}, false},
		{"nested, with nils of both protocols", 0, "*2\r\n:1\r\n*4\r\n$1\r\na\r\n$-1\r\n_\r\n$0\r\n\r\n", []interface{}{int64(1), []interface{}{"a", nil, nil, ""}}, false},
		{"an empty array", 0, "*2\r\n:1\r\n*0\r\n", []interface{}{int64(1), []interface{}{}}, false},
		{"a status", 0, "+OK\r\n", "OK", false},
		// The arrays' slots (16 bytes an element) and the strings' bytes
		// (32 bytes more each).
		{"within the room", 4*16 + 2*32 + 6, "*2\r\n:1\r\n*2\r\n$1\r\na\r\n$5\r\nhello\r\n", []interface{}{int64(1), []interface{}{"a", "hello"}}, false},
		{"a string past the room", 5*16 + 2*32 + 5, "*2\r\n:1\r\n*3\r\n$1\r\na\r\n$5\r\nhello\r\n$1\r\nb\r\n", nil, true},
		{"an array past the room", 2*16 + 1, "*2\r\n:1\r\n*3\r\n$1\r\na\r\n$5\r\nhello\r\n$1\r\nb\r\n", nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, chunk := range []int{1, 3, 1 << 10} {
				var room *Room
				if tt.room > 0 {
					room = &Room{}
					room.Reset(tt.room)
				}
				s := &valueScanner{room: room}
				// The reply twice: a second one (a script sent again)
				// replaces the first.
				for range 2 {
					for b := []byte(tt.reply); len(b) > 0; {
						k := min(chunk, len(b))
						if _, err := s.Write(b[:k]); err != nil {
							t.Fatalf("chunks of %d: %v", chunk, err)
						}
						b = b[k:]
					}
					if room != nil {
						room.Reset(tt.room)
					}
				}
				if !s.complete || !tt.tooLarge && !reflect.DeepEqual(s.value, tt.want) || s.tooLarge != tt.tooLarge {
					t.Fatalf("chunks of %d: %#v (complete %v, too large %v), want %#v (too large %v)", chunk, s.value, s.complete, s.tooLarge, tt.want, tt.tooLarge)
				}
			}
		})
	}
	s := &valueScanner{}
	if _, err := s.Write([]byte("-ERR boom\r\n")); err == nil || err.Error() != "ERR boom" || !UpstreamReply(err) {
		t.Fatalf("error reply: %v", err)
	}
}
