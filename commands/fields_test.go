package commands

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/tidwall/gjson"
)

func TestFieldCommands(t *testing.T) {
	f := newFixture(t, nil)
	f.expect(`SESS.SET a {"user":{"id":7},"n":1,"a.b":2}`, "+OK")
	f.expect("SESS.FGET a user", `${"id":7}`)
	f.expect("SESS.FGET a a.b", "$2") // a top-level name, not a path
	f.expect("SESS.FGET a missing", "nil")
	f.expect("SESS.FGET nosuch user", "nil")
	f.expect("SESS.FMGET a n user missing", `[$1 ${"id":7} nil]`)
	f.expect(`SESS.FSET a n 2 cart [1,2]`, ":2")
	f.expect("SESS.FGET a cart", "$[1,2]")
	f.expect("SESS.FDEL a n missing", ":1")
	f.expect("SESS.GET a", `${"user":{"id":7},"a.b":2,"cart":[1,2]}`)
	f.expect("SESS.FSET a n notjson", "-ERR invalid session payload: field 'n' is not valid JSON")
	f.expect("SESS.FSET a n", "-ERR wrong number of arguments for 'sess.fset' command")
	f.expect("SESS.FDEL nosuch x", ":0")
	f.expect(`SESS.FSET fresh flash "hi"`, ":1")
	f.expect("SESS.GET fresh", `${"flash":"hi"}`)
	if ttl := f.m.TTL("sess:fresh"); ttl <= 0 {
		t.Fatalf("FSET created a session without TTL")
	}
	f.expect("SESS.DESTROY a", ":1")
	f.expect("SESS.FSET a n 1", "-TOMBSTONE session a was destroyed")
	f.expect("SESS.FDEL a user", "-TOMBSTONE session a was destroyed")
}

// The oldest complaint against connect-redis: concurrent requests that
// change different fields lose each other's updates. Here they must not.
func TestConcurrentFieldSetsAllSurvive(t *testing.T) {
	f := newFixture(t, nil)
	f.expect("SESS.SET s {}", "+OK")
	const writers, fields = 10, 50
	var wg sync.WaitGroup
	errs := make(chan string, fields)
	for w := 0; w < writers; w++ {
		p := f.e.NewPipeline(f.e.Connect("127.0.0.1:2", "127.0.0.1:6380"))
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < fields; i += writers {
				args := [][][]byte{{[]byte("SESS.FSET"), []byte("s"), []byte(fmt.Sprintf("f%d", i)), []byte(fmt.Sprint(i))}}
				var out []byte
				p.Run(context.Background(), args, func(b []byte) { out = append(out, b...) })
				if string(out) != ":1\r\n" {
					errs <- string(out)
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Errorf("FSET replied %q", e)
	}
	stored, _ := f.m.Get("sess:s")
	for i := 0; i < fields; i++ {
		if v := gjson.Get(stored, fmt.Sprintf("f%d", i)); v.Int() != int64(i) {
			t.Errorf("field f%d lost: %s", i, stored)
		}
	}
}
