package store

import (
	"bufio"
	"context"
	"errors"
	"math/rand"
	"net"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/redis/go-redis/v9"
)

// respNode is a random RESP2 reply: what it encodes to, and what go-redis
// decodes it to.
type respNode struct {
	kind byte // + - : $ * (and 'n': $-1, 'N': *-1, '_')
	str  string
	num  int64
	kids []*respNode
}

func randomRESP(rng *rand.Rand, depth int) *respNode {
	pick := rng.Intn(10)
	if depth >= 4 && pick >= 8 {
		pick = rng.Intn(8)
	}
	text := func() string {
		const alphabet = "ab\r\n$*-+:_0"
		b := make([]byte, rng.Intn(40))
		for i := range b {
			b[i] = alphabet[rng.Intn(len(alphabet))]
		}
		return string(b)
	}
	line := func() string {
		return strings.NewReplacer("\r", "x", "\n", "y").Replace(text())
	}
	switch pick {
	case 0:
		return &respNode{kind: '+', str: line()}
	case 1:
		return &respNode{kind: '-', str: "ERR " + line()}
	case 2:
		return &respNode{kind: ':', num: rng.Int63n(1<<62) - 1<<61}
	case 3, 4, 5:
		return &respNode{kind: '$', str: text()}
	case 6:
		return &respNode{kind: 'n'}
	case 7:
		return &respNode{kind: 'N'}
	default:
		n := &respNode{kind: '*'}
		for range rng.Intn(6) {
			n.kids = append(n.kids, randomRESP(rng, depth+1))
		}
		return n
	}
}

func (n *respNode) encode(b *strings.Builder) {
	switch n.kind {
	case '+', '-':
		b.WriteString(string(n.kind) + n.str + "\r\n")
	case ':':
		b.WriteString(":" + strconv.FormatInt(n.num, 10) + "\r\n")
	case '$':
		b.WriteString("$" + strconv.Itoa(len(n.str)) + "\r\n" + n.str + "\r\n")
	case 'n':
		b.WriteString("$-1\r\n")
	case 'N':
		b.WriteString("*-1\r\n")
	case '*':
		b.WriteString("*" + strconv.Itoa(len(n.kids)) + "\r\n")
		for _, k := range n.kids {
			k.encode(b)
		}
	}
}

// charge is what valueScanner should give for n with room left, and
// whether it passes the room: each array charged its elements' slots, each
// bulk string its bytes and valueStringBytes.
func (n *respNode) charge(left *int64, tooLarge *bool) interface{} {
	switch n.kind {
	case '+':
		return n.str
	case '-':
		return "error:" + n.str
	case ':':
		return n.num
	case '$':
		if *left -= valueStringBytes + int64(len(n.str)); *left < 0 {
			*tooLarge = true
			return nil
		}
		return n.str
	case '*':
		if *left -= int64(len(n.kids)) * replyElemBytes; *left < 0 {
			*tooLarge = true
		}
		vals := []interface{}{}
		for _, k := range n.kids {
			vals = append(vals, k.charge(left, tooLarge))
		}
		return vals
	}
	return nil
}

// errorsAsText turns error elements into text, so that go-redis's and
// the scanner's error types compare.
func errorsAsText(v interface{}) interface{} {
	switch v := v.(type) {
	case error:
		return "error:" + v.Error()
	case []interface{}:
		out := make([]interface{}, len(v))
		for i, e := range v {
			out[i] = errorsAsText(e)
		}
		return out
	}
	return v
}

// cannedUpstream answers `GET <i>` with replies[i], written to the client
// over a pipe in chunks of random sizes, so that go-redis's reads end at
// every kind of place in a reply.
type cannedUpstream struct {
	mu      sync.Mutex
	replies []string
	rng     *rand.Rand
}

func (u *cannedUpstream) dial(context.Context, string, string) (net.Conn, error) {
	client, server := net.Pipe()
	go func() {
		defer server.Close()
		br := bufio.NewReader(server)
		for {
			var args []string
			head, err := br.ReadString('\n')
			if err != nil {
				return
			}
			n, _ := strconv.Atoi(strings.TrimSpace(head[1:]))
			for range n {
				if _, err := br.ReadString('\n'); err != nil {
					return
				}
				arg, err := br.ReadString('\n')
				if err != nil {
					return
				}
				args = append(args, strings.TrimSuffix(arg, "\r\n"))
			}
			u.mu.Lock()
			reply, cut := "-ERR unknown command\r\n", 1+u.rng.Intn(7)
			if len(args) == 2 && args[0] == "get" {
				i, _ := strconv.Atoi(args[1])
				reply = u.replies[i]
			}
			u.mu.Unlock()
			for len(reply) > 0 {
				k := min(cut, len(reply))
				if _, err := server.Write([]byte(reply[:k])); err != nil {
					return
				}
				reply = reply[k:]
			}
		}
	}()
	return client, nil
}

// valueScanner decodes any RESP2 reply, read by go-redis in pieces cut
// anywhere, as go-redis's own reader does (error elements compared as
// text), and with a room, says whether it passed the room. The replies
// pass the reply guard, too.
func TestValueScannerDecodesAsGoRedis(t *testing.T) {
	rng := rand.New(rand.NewSource(8))
	up := &cannedUpstream{rng: rand.New(rand.NewSource(9))}
	var nodes []*respNode
	for range 3000 {
		n := randomRESP(rng, 0)
		var b strings.Builder
		n.encode(&b)
		nodes = append(nodes, n)
		up.replies = append(up.replies, b.String())
	}
	c := redis.NewClient(&redis.Options{Addr: "canned:1", Dialer: guardedDialer(up.dial), Protocol: 2,
		DisableIdentity: true, MaxRetries: -1, PoolSize: 1})
	defer c.Close()
	ctx := context.Background()
	for i, n := range nodes {
		idx := strconv.Itoa(i)
		want, werr := c.Do(ctx, "get", idx).Result()
		if errors.Is(werr, redis.Nil) {
			want, werr = nil, nil
		}
		s := &valueScanner{}
		raw := redis.NewRawWriteToCmd(ctx, s, "get", idx)
		_ = c.Process(ctx, raw)
		if n.kind == '-' {
			if werr == nil || raw.Err() == nil || werr.Error() != raw.Err().Error() {
				t.Fatalf("reply %d %q: go-redis %v, scanner %v", i, up.replies[i], werr, raw.Err())
			}
			continue
		}
		if werr != nil || raw.Err() != nil || !s.complete {
			t.Fatalf("reply %d %q: go-redis %v, scanner %v (complete %v)", i, up.replies[i], werr, raw.Err(), s.complete)
		}
		if got := errorsAsText(s.value); !reflect.DeepEqual(got, errorsAsText(want)) {
			t.Fatalf("reply %d %q:\nscanner  %#v\ngo-redis %#v", i, up.replies[i], got, errorsAsText(want))
		}
		// With a room: each bulk string charged in order.
		left := rng.Int63n(400)
		r := &Room{}
		r.Reset(left)
		s = &valueScanner{room: r}
		if err := c.Process(ctx, redis.NewRawWriteToCmd(ctx, s, "get", idx)); err != nil {
			t.Fatalf("reply %d with a room: %v", i, err)
		}
		var tooLarge bool
		if want := n.charge(&left, &tooLarge); s.tooLarge != tooLarge || !tooLarge && !reflect.DeepEqual(errorsAsText(s.value), want) {
			t.Fatalf("reply %d %q with a room:\nscanner %#v (too large %v)\nwant    %#v (%v)", i, up.replies[i], errorsAsText(s.value), s.tooLarge, want, tooLarge)
		}
	}
}
