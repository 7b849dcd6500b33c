package store

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// testBatch is a batch on a store without an upstream: what it queues can
// be planned, and sent through a fake transport.
func testBatch() *Batch {
	return &Batch{s: &Store{}}
}

// inSlot puts every operation queued so far on slot, as a cluster would
// for keys of one hash tag.
func inSlot(b *Batch, slot int) {
	for i := range b.ops {
		b.ops[i].slot = slot
	}
}

// cmdString is a command as a test reads it: its arguments separated by
// spaces, the proxy's script hashes by name.
func cmdString(cmd redis.Cmder) string {
	names := map[string]string{setManyScript.Hash(): "setMany", writeScript.Hash(): "write", indexAddScript.Hash(): "indexAdd"}
	var parts []string
	for _, a := range cmd.Args() {
		var s string
		switch v := a.(type) {
		case string:
			s = v
		case *string:
			s = *v
		case []byte:
			s = string(v)
		default:
			s = fmt.Sprint(v)
		}
		if name, ok := names[s]; ok {
			s = name
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, " ")
}

// planString is p's calls as a test reads them: each command, the
// operations it serves, and "run" for a call recovery may split.
func planString(p *plan) []string {
	var out []string
	for _, c := range p.calls {
		if c.split {
			continue
		}
		s := fmt.Sprintf("%s %v", cmdString(c.cmd), c.ops)
		if c.run {
			s += " run"
		}
		out = append(out, s)
	}
	return out
}

func TestPlan(t *testing.T) {
	hour := time.Hour
	tests := []struct {
		name      string
		queue     func(b *Batch)
		migrating bool
		want      []string
	}{
		{
			name:  "a lone read is a GET",
			queue: func(b *Batch) { b.Get("a") },
			want:  []string{"get a [0]"},
		},
		{
			name:  "consecutive reads of one slot are one MGET",
			queue: func(b *Batch) { b.Get("a"); b.Get("b"); b.Get("c") },
			want:  []string{"mget a b c [0 1 2] run"},
		},
		{
			name:  "consecutive absence checks of one slot are one EXISTS, apart from reads",
			queue: func(b *Batch) { b.Absent("a"); b.Absent("b"); b.Get("c"); b.Absent("d") },
			want:  []string{"exists a b [0 1] run", "get c [2]", "exists d [3]"},
		},
		{
			name:      "absence checks of a slot being migrated are one EXISTS each",
			queue:     func(b *Batch) { b.Absent("a"); b.Absent("b") },
			migrating: true,
			want:      []string{"exists a [0]", "exists b [1]"},
		},
		{
			name:      "reads of a slot being migrated are one GET each",
			queue:     func(b *Batch) { b.Get("a"); b.Get("b") },
			migrating: true,
			want:      []string{"get a [0]", "get b [1]"},
		},
		{
			name: "consecutive writes of one slot are one script call",
			queue: func(b *Batch) {
				b.Write("a", Write{Value: []byte("1"), TTL: hour})
				b.Write("b", Write{Value: []byte("2"), TTL: time.Second})
			},
			want: []string{"evalsha setMany 2 a b 1 3600000 2 1000 [0 1] run"},
		},
		{
			name:  "a lone write is a script call of one key, which recovery may still split",
			queue: func(b *Batch) { b.Write("a", Write{Value: []byte("1"), TTL: hour}) },
			want:  []string{"evalsha setMany 1 a 1 3600000 [0] run"},
		},
		{
			name: "writes of a slot being migrated are one script call each",
			queue: func(b *Batch) {
				b.Write("a", Write{Value: []byte("1"), TTL: hour})
				b.Write("b", Write{Value: []byte("2"), TTL: hour})
			},
			migrating: true,
			want:      []string{"evalsha setMany 1 a 1 3600000 [0]", "evalsha setMany 1 b 2 3600000 [1]"},
		},
		{
			name: "a command closes the run before it",
			queue: func(b *Batch) {
				b.Write("a", Write{Value: []byte("1"), TTL: hour})
				b.Forward(false, "set", "x", "y")
				b.Write("b", Write{Value: []byte("2"), TTL: hour})
			},
			want: []string{"evalsha setMany 1 a 1 3600000 [0] run", "set x y [1]", "evalsha setMany 1 b 2 3600000 [2] run"},
		},
		{
			name: "a read closes a run of writes, and a write a run of reads",
			queue: func(b *Batch) {
				b.Write("a", Write{Value: []byte("1"), TTL: hour})
				b.Get("a")
				b.Get("b")
				b.Write("b", Write{Value: []byte("2"), TTL: hour})
			},
			want: []string{"evalsha setMany 1 a 1 3600000 [0] run", "mget a b [1 2] run", "evalsha setMany 1 b 2 3600000 [3] run"},
		},
		{
			name: "an unordered operation waits for the open run of writes",
			queue: func(b *Batch) {
				b.Write("a", Write{Value: []byte("1"), TTL: hour})
				b.IndexAdd("idx", "a", hour)
				b.Write("b", Write{Value: []byte("2"), TTL: hour})
			},
			want: []string{"evalsha setMany 2 a b 1 3600000 2 3600000 [0 2] run", "evalsha indexAdd 1 idx a 3600000 [1]"},
		},
		{
			name: "an unordered operation goes ahead of an open run of reads",
			queue: func(b *Batch) {
				b.Get("a")
				b.IndexAdd("idx", "a", hour)
				b.Get("b")
			},
			want: []string{"evalsha indexAdd 1 idx a 3600000 [1]", "mget a b [0 2] run"},
		},
		{
			name: "a run ends at a change of slot",
			queue: func(b *Batch) {
				b.Get("a")
				b.Get("b")
				b.ops[1].slot = 7
			},
			want: []string{"get a [0]", "get b [1]"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := testBatch()
			tt.queue(b)
			var p plan
			p.build(b.ops, func(int) bool { return tt.migrating })
			if got := planString(&p); !slices.Equal(got, tt.want) {
				t.Errorf("plan:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(tt.want, "\n  "))
			}
		})
	}
}

// A run holds at most maxRunKeys keys.
func TestPlanBoundsRuns(t *testing.T) {
	b := testBatch()
	for i := 0; i < maxRunKeys+2; i++ {
		b.Write(fmt.Sprint("k", i), Write{Value: []byte("v"), TTL: time.Hour})
	}
	var p plan
	p.build(b.ops, nil)
	if len(p.calls) != 2 || len(p.calls[0].ops) != maxRunKeys || len(p.calls[1].ops) != 2 {
		t.Fatalf("%d writes planned as %d calls, want %d and 2 keys", maxRunKeys+2, len(p.calls), maxRunKeys)
	}
}

// Every operation's keys are as recorded when it was queued, never read
// back from its arguments.
func TestPlanRecordsKeys(t *testing.T) {
	b := testBatch()
	b.Get("a")
	b.Get("b")
	b.Forward(true, "get", "c")
	b.Forward(false, "ping")
	b.Eval(NewUserScript("return 1"), true, []string{"d", "e"}, nil)
	b.MGet([]string{"f", "g"})
	b.ForwardKey(true, "h", "memory", "usage", "h")
	var p plan
	p.build(b.ops, nil)
	var got []string
	for _, c := range p.calls {
		if c.opaque {
			got = append(got, "opaque")
			continue
		}
		got = append(got, strings.Join(c.keys, ","))
	}
	want := []string{"a,b", "c", "opaque", "d,e", "f,g", "h"}
	if !slices.Equal(got, want) {
		t.Fatalf("keys %v, want %v", got, want)
	}
}
