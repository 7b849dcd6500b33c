package integration

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/rueidis"
)

// Client-side caching (CLIENT TRACKING, commands/tracking.go): rueidis
// with its default options, and the push frames and modes on a raw RESP3
// connection.

// invalidationDeadline is how soon after a write a client's cache must
// have dropped the key.
const invalidationDeadline = 100 * time.Millisecond

// testTrackingRueidis: rueidis's default client (HELLO 3, CLIENT TRACKING
// ON OPTIN, DoCache as CLIENT CACHING YES + MULTI PTTL GET EXEC) caches
// through the proxy, and its cache follows writes made through another
// proxy and straight to Redis.
func testTrackingRueidis(t *testing.T, up *upstream) {
	p := startProxy(t, up, nil)
	sibling := startSibling(t, up, nil)
	ctx := context.Background()
	c, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{p.addr}})
	if err != nil {
		t.Fatalf("rueidis.NewClient through the proxy: %v", err)
	}
	defer c.Close()
	const key = "sess:rueidis-cache"
	if err := c.Do(ctx, c.B().Set().Key(key).Value(`{"v":1}`).Ex(time.Hour).Build()).Error(); err != nil {
		t.Fatalf("SET: %v", err)
	}
	get := func() (string, bool) {
		t.Helper()
		r := c.DoCache(ctx, c.B().Get().Key(key).Cache(), time.Minute)
		v, err := r.ToString()
		if err != nil {
			t.Fatalf("DoCache GET: %v", err)
		}
		return v, r.IsCacheHit()
	}
	if v, hit := get(); v != `{"v":1}` || hit {
		t.Fatalf("first DoCache = %q, hit %v; want the value from the proxy", v, hit)
	}
	if v, hit := get(); v != `{"v":1}` || !hit {
		t.Fatalf("second DoCache = %q, hit %v; want it from the client's cache", v, hit)
	}
	// waitFor polls DoCache until it answers want, bounded by the deadline.
	waitFor := func(how, want string) {
		t.Helper()
		start := time.Now()
		for {
			v, _ := get()
			if v == want {
				t.Logf("%s: DoCache saw the new value %v after the write", how, time.Since(start).Round(10*time.Microsecond))
				return
			}
			if time.Since(start) > invalidationDeadline {
				t.Fatalf("%s: DoCache still answers %q %v after the write, want %q", how, v, invalidationDeadline, want)
			}
			time.Sleep(200 * time.Microsecond)
		}
	}
	get() // cached again
	if err := sibling.client(t).Set(ctx, key, `{"v":2}`, time.Hour).Err(); err != nil {
		t.Fatalf("SET through the sibling proxy: %v", err)
	}
	waitFor("write through another proxy", `{"v":2}`)
	if _, hit := get(); !hit {
		t.Errorf("DoCache after the refill: not a cache hit")
	}
	if err := up.direct.Set(ctx, key, `{"v":3}`, time.Hour).Err(); err != nil {
		t.Fatalf("direct SET: %v", err)
	}
	waitFor("write straight to Redis", `{"v":3}`)
	// A destroy (DEL writes the tombstone) invalidates too.
	get()
	if err := sibling.client(t).Del(ctx, key).Err(); err != nil {
		t.Fatalf("DEL through the sibling proxy: %v", err)
	}
	start := time.Now()
	for {
		r := c.DoCache(ctx, c.B().Get().Key(key).Cache(), time.Minute)
		if rueidis.IsRedisNil(r.Error()) {
			t.Logf("destroy through another proxy: DoCache saw it after %v", time.Since(start).Round(10*time.Microsecond))
			break
		}
		if time.Since(start) > invalidationDeadline {
			t.Fatalf("DoCache after the destroy: %v, still cached", r.Error())
		}
		time.Sleep(200 * time.Microsecond)
	}
}

// testTrackingPushes drives CLIENT TRACKING on raw RESP3 connections: the
// push frame's bytes, default mode, OPTIN, BCAST PREFIX, NOLOOP, and the
// writer's own invalidation ahead of its reply.
func testTrackingPushes(t *testing.T, up *upstream) {
	p := startProxy(t, up, nil)
	ctx := context.Background()
	writer := p.client(t)
	set := func(key string) {
		t.Helper()
		if err := writer.Set(ctx, key, `{"a":1}`, time.Hour).Err(); err != nil {
			t.Fatalf("SET %s: %v", key, err)
		}
	}

	t.Run("DefaultMode", func(t *testing.T) {
		c := dialRESP3(t, p.addr)
		c.want(t, "+OK", "CLIENT", "TRACKING", "ON")
		set("sess:def-1")
		time.Sleep(20 * time.Millisecond) // its upstream echo, before the read
		c.do(t, "GET", "sess:def-1")
		c.do(t, "GET", "sess:def-2") // a miss is tracked as well
		set("sess:def-1")
		if got, want := c.frame(t), ">2\r\n$10\r\ninvalidate\r\n*1\r\n$10\r\nsess:def-1\r\n"; got != want {
			t.Fatalf("push after a write of a read key = %q, want %q", got, want)
		}
		// Invalidated once: the key left the table until read again.
		set("sess:def-1")
		up.direct.Set(ctx, "sess:def-2", `{"a":2}`, time.Hour)
		if got := c.frame(t); got != ">2\r\n$10\r\ninvalidate\r\n*1\r\n$10\r\nsess:def-2\r\n" {
			t.Fatalf("after a direct write of sess:def-2, frame %q", got)
		}
		c.want(t, "+PONG", "PING")
		c.want(t, "%3\r\n$5\r\nflags\r\n~1\r\n$2\r\non\r\n$8\r\nredirect\r\n:0\r\n$8\r\nprefixes\r\n*0\r\n", "CLIENT", "TRACKINGINFO")
		c.want(t, ":0", "CLIENT", "GETREDIR")
	})

	t.Run("OwnWriteBeforeReply", func(t *testing.T) {
		c := dialRESP3(t, p.addr)
		c.want(t, "+OK", "CLIENT", "TRACKING", "ON")
		c.do(t, "GET", "sess:own-1")
		c.send(t, "SET", "sess:own-1", `{"a":1}`, "EX", "60")
		if got := c.frame(t); got != ">2\r\n$10\r\ninvalidate\r\n*1\r\n$10\r\nsess:own-1\r\n" {
			t.Fatalf("before the reply to its own write, frame %q, want the push", got)
		}
		if got := c.frame(t); got != "+OK" {
			t.Fatalf("reply to the write %q", got)
		}
		c.want(t, "+PONG", "PING")
	})

	t.Run("NoLoop", func(t *testing.T) {
		c := dialRESP3(t, p.addr)
		c.want(t, "+OK", "CLIENT", "TRACKING", "ON", "NOLOOP")
		c.do(t, "GET", "sess:noloop-1")
		c.want(t, "+OK", "SET", "sess:noloop-1", `{"a":1}`, "EX", "60")
		time.Sleep(50 * time.Millisecond) // the upstream's echo of the write
		c.want(t, "+PONG", "PING")
		// Another client's write still reaches it.
		c.do(t, "GET", "sess:noloop-1")
		set("sess:noloop-1")
		if got := c.frame(t); !strings.Contains(got, "sess:noloop-1") {
			t.Fatalf("another client's write: frame %q", got)
		}
	})

	t.Run("OptIn", func(t *testing.T) {
		c := dialRESP3(t, p.addr)
		c.want(t, "+OK", "CLIENT", "TRACKING", "ON", "OPTIN")
		c.do(t, "GET", "sess:optin-untracked")
		c.want(t, "+OK", "CLIENT", "CACHING", "YES")
		c.do(t, "GET", "sess:optin-tracked")
		c.do(t, "GET", "sess:optin-next") // CACHING YES covered one command
		set("sess:optin-untracked")
		set("sess:optin-next")
		set("sess:optin-tracked")
		if got := c.frame(t); got != ">2\r\n$10\r\ninvalidate\r\n*1\r\n$18\r\nsess:optin-tracked\r\n" {
			t.Fatalf("OPTIN: frame %q, want only sess:optin-tracked", got)
		}
		c.want(t, "+PONG", "PING")
		// CACHING YES before MULTI covers the transaction (rueidis's DoCache).
		c.want(t, "+OK", "CLIENT", "CACHING", "YES")
		c.want(t, "+OK", "MULTI")
		c.want(t, "+QUEUED", "GET", "sess:optin-tx")
		c.do(t, "EXEC")
		set("sess:optin-tx")
		if got := c.frame(t); !strings.Contains(got, "sess:optin-tx") {
			t.Fatalf("OPTIN transaction: frame %q", got)
		}
		c.want(t, "-ERR CLIENT CACHING NO is only valid when tracking is enabled in OPTOUT mode.", "CLIENT", "CACHING", "NO")
	})

	t.Run("BcastPrefix", func(t *testing.T) {
		c := dialRESP3(t, p.addr)
		c.want(t, "+OK", "CLIENT", "TRACKING", "ON", "BCAST", "PREFIX", "sess:bc-")
		set("sess:other-1")
		set("sess:bc-1")
		if got := c.frame(t); got != ">2\r\n$10\r\ninvalidate\r\n*1\r\n$9\r\nsess:bc-1\r\n" {
			t.Fatalf("BCAST: frame %q, want sess:bc-1 only", got)
		}
		up.direct.Set(ctx, "sess:bc-2", `{"a":1}`, time.Hour)
		if got := c.frame(t); got != ">2\r\n$10\r\ninvalidate\r\n*1\r\n$9\r\nsess:bc-2\r\n" {
			t.Fatalf("BCAST, direct write: frame %q", got)
		}
		c.want(t, "-ERR Prefix 'sess:bc-x' overlaps with an existing prefix 'sess:bc-'. Prefixes for a single client must not overlap.",
			"CLIENT", "TRACKING", "ON", "BCAST", "PREFIX", "sess:bc-x")
		c.want(t, "-ERR PREFIX option requires BCAST mode to be enabled", "CLIENT", "TRACKING", "ON", "PREFIX", "sess:")
	})

	t.Run("Errors", func(t *testing.T) {
		c := dialRESP3(t, p.addr)
		c.want(t, ":-1", "CLIENT", "GETREDIR")
		c.want(t, "-ERR CLIENT CACHING can be called only when the client is in tracking mode with OPTIN or OPTOUT mode enabled", "CLIENT", "CACHING", "YES")
		c.want(t, "-ERR You can't use both OPTIN and OPTOUT", "CLIENT", "TRACKING", "ON", "OPTIN", "OPTOUT")
		c.want(t, "-ERR OPTIN and OPTOUT are not compatible with BCAST", "CLIENT", "TRACKING", "ON", "BCAST", "OPTIN")
		c.want(t, "-ERR The client ID you want redirect to does not exist", "CLIENT", "TRACKING", "ON", "REDIRECT", "999999")
		c.want(t, "+OK", "CLIENT", "TRACKING", "OFF")
	})

	// RESP2: the tracking client REDIRECTs to a connection subscribed to
	// __redis__:invalidate, which gets each invalidation as a message; in
	// subscribed mode that connection runs only what Redis allows there.
	t.Run("Redirect", func(t *testing.T) {
		sub := dialRaw2(t, p.addr)
		id := strings.TrimPrefix(sub.do(t, "CLIENT", "ID"), ":")
		sub.want(t, "*3\r\n$9\r\nsubscribe\r\n$20\r\n__redis__:invalidate\r\n:1\r\n", "SUBSCRIBE", "__redis__:invalidate")
		sub.want(t, "-ERR Can't execute 'get': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context", "GET", "sess:x")
		sub.want(t, "*2\r\n$4\r\npong\r\n$0\r\n\r\n", "PING")

		c := dialRaw2(t, p.addr)
		c.want(t, "+OK", "CLIENT", "TRACKING", "ON", "REDIRECT", id)
		c.want(t, ":"+id, "CLIENT", "GETREDIR")
		c.do(t, "GET", "sess:redir-1")
		up.direct.Set(ctx, "sess:redir-1", `{"a":2}`, time.Hour) // straight to Redis
		want := "*3\r\n$7\r\nmessage\r\n$20\r\n__redis__:invalidate\r\n*1\r\n$12\r\nsess:redir-1\r\n"
		if got := sub.frame(t); got != want {
			t.Fatalf("redirected invalidation %q, want %q", got, want)
		}
		// Its own write: the invalidation goes to the target too, not
		// in-band ahead of the reply.
		c.do(t, "GET", "sess:redir-1")
		c.want(t, "+OK", "SET", "sess:redir-1", `{"a":3}`, "EX", "60")
		if got := sub.frame(t); got != want {
			t.Fatalf("redirected invalidation of its own write %q, want %q", got, want)
		}
		sub.want(t, "-ERR sessproxy serves SUBSCRIBE only for __redis__:invalidate (CLIENT TRACKING … REDIRECT), not 'news': it is no pub/sub broker (see docs/commands.md, Client-side caching)", "SUBSCRIBE", "news")
		sub.want(t, "*3\r\n$11\r\nunsubscribe\r\n$20\r\n__redis__:invalidate\r\n:0\r\n", "UNSUBSCRIBE")
		sub.want(t, "+PONG", "PING")
	})
}

// dialRaw2 is a raw RESP2 connection read frame by frame (resp3Conn's
// reader, without HELLO 3).
func dialRaw2(t *testing.T, addr string) *resp3Conn {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { nc.Close() })
	return &resp3Conn{nc: nc, r: bufio.NewReader(nc)}
}

// resp3Conn is a raw connection after HELLO 3 whose frames are read as
// their bytes, so the tests see pushes exactly as a client library does.
type resp3Conn struct {
	nc net.Conn
	r  *bufio.Reader
}

func dialRESP3(t *testing.T, addr string) *resp3Conn {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { nc.Close() })
	c := &resp3Conn{nc: nc, r: bufio.NewReader(nc)}
	if got := c.do(t, "HELLO", "3"); !strings.HasPrefix(got, "%7") {
		t.Fatalf("HELLO 3: %q", got)
	}
	return c
}

func (c *resp3Conn) send(t *testing.T, args ...string) {
	t.Helper()
	if _, err := c.nc.Write(encode(args...)); err != nil {
		t.Fatalf("write: %v", err)
	}
}

// do sends a command and returns its reply, failing on a push.
func (c *resp3Conn) do(t *testing.T, args ...string) string {
	t.Helper()
	c.send(t, args...)
	got := c.frame(t)
	if strings.HasPrefix(got, ">") {
		t.Fatalf("%q: a push %q where its reply was due", args, got)
	}
	return got
}

// want checks a command's reply (its bytes without the last CRLF).
func (c *resp3Conn) want(t *testing.T, want string, args ...string) {
	t.Helper()
	if got := c.do(t, args...); got != want {
		t.Fatalf("%q = %q, want %q", args, got, want)
	}
}

// frame reads one whole frame: its bytes, without the final CRLF for a
// one-line frame.
func (c *resp3Conn) frame(t *testing.T) string {
	t.Helper()
	_ = c.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	var b strings.Builder
	if err := readFrame(c.r, &b); err != nil {
		t.Fatalf("read frame: %v (so far %q)", err, b.String())
	}
	s := b.String()
	if strings.Count(s, "\r\n") == 1 {
		s = strings.TrimSuffix(s, "\r\n")
	}
	return s
}

func readFrame(r *bufio.Reader, b *strings.Builder) error {
	line, err := r.ReadString('\n')
	if err != nil {
		return err
	}
	b.WriteString(line)
	if len(line) < 3 {
		return fmt.Errorf("short line %q", line)
	}
	body := line[1 : len(line)-2]
	switch line[0] {
	case '$', '=', '!':
		n, err := strconv.Atoi(body)
		if err != nil || n < 0 {
			return err
		}
		buf := make([]byte, n+2)
		if _, err := io.ReadFull(r, buf); err != nil {
			return err
		}
		b.Write(buf)
	case '*', '~', '>', '%':
		n, err := strconv.Atoi(body)
		if err != nil {
			return err
		}
		if line[0] == '%' {
			n *= 2
		}
		for range n {
			if err := readFrame(r, b); err != nil {
				return err
			}
		}
	}
	return nil
}
