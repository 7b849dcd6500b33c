package main

import (
	"bytes"
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/sessproxy/sessproxy/integration/redistest"
	"github.com/sessproxy/sessproxy/store"
	"go.uber.org/zap"
)

// TestDefaultConfigBoundsWhatAHashWriteCostsRedis runs the engine the
// default configuration builds on a real redis-server. A hash session's
// byte bound (codec.max_payload_bytes) is measured by reading the whole
// hash on Redis at every write, so tiny fields made every HSET on a hash of
// ~200,000 of them, refused or not, cost Redis over 100 ms: 30-byte
// requests could stall it. The bound on fields (codec.max_hash_fields) is
// checked first, in constant time. The test goes through the config, not
// commands.Options, so it also fails where the key is not wired through.
func TestDefaultConfigBoundsWhatAHashWriteCostsRedis(t *testing.T) {
	// maxRedisPerWrite is far above a write at the cap (under 1 ms on a
	// 2-core machine) and far below one that reads 200,000 fields.
	const maxRedisPerWrite = 10 * time.Millisecond
	const bigFields = 200000
	srv := redistest.Standalone(t)
	cfg := defaultConfig()
	cfg.Upstream.Mode, cfg.Upstream.Addrs = store.ModeStandalone, []string{srv.Addr}
	st, engine, err := open(cfg, zap.NewNop(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	p := engine.NewPipeline(engine.Connect("127.0.0.1:1", "127.0.0.1:6380"))
	do := func(args ...string) string {
		cmd := make([][]byte, len(args))
		for i, a := range args {
			cmd[i] = []byte(a)
		}
		var out bytes.Buffer
		p.Run(context.Background(), [][][]byte{cmd}, func(b []byte) { out.Write(b) })
		return strings.TrimSuffix(out.String(), "\r\n")
	}
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr})
	defer rdb.Close()
	ctx := context.Background()
	// perWrite is Redis's own time per script call (the proxy's EVALSHA,
	// or EVAL after a NOSCRIPT) over n runs of cmd, and cmd's last reply.
	perWrite := func(n int, cmd ...string) (time.Duration, string) {
		t.Helper()
		if err := rdb.ConfigResetStat(ctx).Err(); err != nil {
			t.Fatal(err)
		}
		var reply string
		for range n {
			reply = do(cmd...)
		}
		info, err := rdb.Info(ctx, "commandstats").Result()
		if err != nil {
			t.Fatal(err)
		}
		var usec, calls int64
		for _, line := range strings.Split(info, "\r\n") {
			name, stats, ok := strings.Cut(line, ":")
			if !ok || (name != "cmdstat_evalsha" && name != "cmdstat_eval") {
				continue
			}
			for _, kv := range strings.Split(stats, ",") {
				k, v, _ := strings.Cut(kv, "=")
				x, _ := strconv.ParseInt(v, 10, 64)
				switch k {
				case "usec":
					usec += x
				case "calls":
					calls += x
				}
			}
		}
		if calls < int64(n) {
			t.Fatalf("%d script calls for %d writes:\n%s", calls, n, info)
		}
		return time.Duration(usec) * time.Microsecond / time.Duration(calls), reply
	}

	// codec.max_hash_fields's default, as a literal so that the test
	// fails, rather than not compiling, on the code before the bound.
	const limit = 1024
	full := []string{"HSET", "sess:full"}
	for i := range limit {
		full = append(full, strconv.Itoa(i), "")
	}
	if got := do(full...); got != ":"+strconv.Itoa(limit) {
		t.Fatalf("HSET of %d fields = %q", limit, got)
	}
	refused := fmt.Sprintf("-ERR hash session full would exceed codec.max_hash_fields (%d fields): nothing written", limit)
	if got := do("HSET", "sess:full", "one-more", ""); got != refused {
		t.Errorf("HSET of field %d = %q, want %q", limit+1, got, refused)
	}
	if n := rdb.HLen(ctx, "sess:full").Val(); n != int64(limit) {
		t.Errorf("HLEN after the refused write = %d, want %d", n, limit)
	}
	if rdb.HExists(ctx, "sess:full", "one-more").Val() {
		t.Error("the refused field was written")
	}

	// A client's script's hash writes are bounded the same way.
	const scriptHSet = "return redis.pcall('hset', KEYS[1], ARGV[1], ARGV[2])"
	if got := do("EVAL", scriptHSet, "1", "sess:full", "one-more", ""); !strings.HasPrefix(got, refused[:len(refused)-len(": nothing written")]) {
		t.Errorf("a script's HSET of field %d = %q, want %q…", limit+1, got, refused)
	}

	small, _ := perWrite(20, "HSET", "sess:small", "f", "x")
	atCap, reply := perWrite(20, "HSET", "sess:full", "0", "x")
	if reply != ":0" {
		t.Errorf("HSET of a field a full hash has = %q, want :0", reply)
	}
	scriptAtCap, reply := perWrite(20, "EVAL", scriptHSet, "1", "sess:full", "0", "y")
	if reply != ":0" {
		t.Errorf("a script's HSET of a field a full hash has = %q, want :0", reply)
	}

	// A hash of tiny fields that fits max_payload_bytes, written before the
	// bound on fields existed (or directly to Redis).
	pipe := rdb.Pipeline()
	for i := 0; i < bigFields; i += 1000 {
		args := make([]interface{}, 0, 2000)
		for j := i; j < i+1000; j++ {
			args = append(args, strconv.FormatInt(int64(j), 16), "")
		}
		pipe.HSet(ctx, "sess:big", args...)
	}
	pipe.Expire(ctx, "sess:big", time.Hour)
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatal(err)
	}
	big, reply := perWrite(5, "HSET", "sess:big", "0", "x")
	if !strings.HasPrefix(reply, "-ERR hash session big would exceed") {
		t.Errorf("HSET on a hash of %d fields = %q, want it refused", bigFields, reply)
	}
	scriptBig, reply := perWrite(5, "EVAL", scriptHSet, "1", "sess:big", "0", "y")
	if !strings.HasPrefix(reply, "-ERR hash session big would exceed") {
		t.Errorf("a script's HSET on a hash of %d fields = %q, want it refused", bigFields, reply)
	}
	if v := rdb.HGet(ctx, "sess:big", "0").Val(); v != "" {
		t.Errorf("the refused writes left field 0 = %q", v)
	}

	t.Logf("Redis time per HSET through the proxy: %v on a hash of 1 field, %v at max_hash_fields (%d fields), %v on a hash of %d fields",
		small, atCap, limit, big, bigFields)
	t.Logf("Redis time per script HSET: %v at max_hash_fields, %v on a hash of %d fields", scriptAtCap, scriptBig, bigFields)
	for _, m := range []struct {
		what string
		d    time.Duration
	}{
		{fmt.Sprintf("at max_hash_fields (%d)", limit), atCap},
		{fmt.Sprintf("on %d fields", bigFields), big},
		{"in a script at max_hash_fields", scriptAtCap},
		{fmt.Sprintf("in a script on %d fields", bigFields), scriptBig},
	} {
		if m.d > maxRedisPerWrite {
			t.Errorf("a hash write %s cost Redis %v, want at most %v", m.what, m.d, maxRedisPerWrite)
		}
	}
}
