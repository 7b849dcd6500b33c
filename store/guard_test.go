package store

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/sessproxy/sessproxy/store/codec"
)

// Each script that answers a previous value leaves the key alone when its
// guard says so, and hands the value back untouched.
func TestGuardStopsTheScripts(t *testing.T) {
	ctx := context.Background()
	s, m := openMini(t)
	envelope, err := codec.New(codec.Options{Envelope: true})
	if err != nil {
		t.Fatal(err)
	}
	withHeader, err := envelope.Encode([]byte(`{"v":1}`), codec.Meta{})
	if err != nil {
		t.Fatal(err)
	}
	plain := []byte(`{"v":1}`)
	ops := map[string]func(b *Batch, g Guard) func() ([]byte, error){
		"write": func(b *Batch, g Guard) func() ([]byte, error) {
			r := b.Write("sess:a", Write{Value: []byte(`{"v":2}`), TTL: time.Hour, ReturnOld: true, Guard: g})
			return func() ([]byte, error) { _, old, err := r.Result(); return old, err }
		},
		"expire": func(b *Batch, g Guard) func() ([]byte, error) {
			r := b.Expire("sess:a", Expiry{TTL: time.Hour, ReturnValue: true, Guard: g})
			return func() ([]byte, error) { _, v, err := r.Result(); return v, err }
		},
		"destroy": func(b *Batch, g Guard) func() ([]byte, error) {
			r := b.GetDestroy("sess:a", time.Minute, TombstoneString, g)
			return func() ([]byte, error) { _, old, err := r.Result(); return old, err }
		},
	}
	cases := []struct {
		name    string
		stored  []byte
		guard   Guard
		stopped bool
	}{
		{"header value, header guard", withHeader, GuardHeader, true},
		{"plain value, header guard", plain, GuardHeader, false},
		{"changed since decoded", withHeader, GuardUnchanged(plain), true},
		{"unchanged since decoded", withHeader, GuardUnchanged(withHeader), false},
		{"no guard", withHeader, NoGuard, false},
	}
	for name, op := range ops {
		for _, tc := range cases {
			t.Run(name+"/"+tc.name, func(t *testing.T) {
				m.Set("sess:a", string(tc.stored))
				m.SetTTL("sess:a", 10*time.Minute)
				b := s.NewBatch()
				result := op(b, tc.guard)
				if err := b.Exec(ctx); err != nil {
					t.Fatal(err)
				}
				prev, err := result()
				if string(prev) != string(tc.stored) {
					t.Fatalf("previous value = %q, want %q", prev, tc.stored)
				}
				stored, _ := m.Get("sess:a")
				switch {
				case tc.stopped && !errors.Is(err, ErrCheckPrevious):
					t.Fatalf("err = %v, want ErrCheckPrevious", err)
				case tc.stopped && (stored != string(tc.stored) || m.TTL("sess:a") != 10*time.Minute):
					t.Fatalf("a stopped %s changed the key: %q, TTL %v", name, stored, m.TTL("sess:a"))
				case !tc.stopped && err != nil:
					t.Fatalf("err = %v, want the %s done", err, name)
				case !tc.stopped && stored == string(tc.stored) && m.TTL("sess:a") == 10*time.Minute:
					t.Fatalf("the %s was not done", name)
				}
			})
		}
	}
}
