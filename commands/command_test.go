package commands

import (
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestEveryCommandIsDocumented(t *testing.T) {
	f := newFixture(t, nil)
	for name, cmd := range f.e.registry {
		d, ok := docOf(name)
		if !ok || d.summary == "" || d.since == "" || d.group == "" || d.complexity == "" {
			t.Errorf("%s: no complete COMMAND DOCS entry (%+v)", name, d)
		}
		for _, s := range subcommands[cmd.Name] {
			if sd, ok := docOf(s.name); !ok || sd.summary == "" {
				t.Errorf("subcommand %s: no COMMAND DOCS entry", s.name)
			}
			if !strings.HasPrefix(s.name, cmd.Name+"|") {
				t.Errorf("subcommand %s listed under %s", s.name, cmd.Name)
			}
		}
	}
	for name := range sessDocs {
		parent, _, sub := strings.Cut(name, "|")
		if f.e.registry[parent] == nil {
			t.Errorf("sessDocs documents %s, which is not served", name)
		}
		if sub {
			found := false
			for _, s := range subcommands[parent] {
				found = found || s.name == name
			}
			if !found {
				t.Errorf("sessDocs documents %s, which is not in subcommands", name)
			}
		}
	}
	for name, d := range redisDocs {
		func() {
			defer func() {
				if r := recover(); r != nil {
					t.Errorf("%s: %v", name, r)
				}
			}()
			parseDocArgs(d.args)
		}()
	}
	for name, d := range sessDocs {
		parseDocArgs(d.args) // panics on a malformed entry
		_ = name
	}
}

// The hints redis-cli builds from COMMAND DOCS (its cliAddArgument) read
// as Redis's own documentation does.
func TestDocHints(t *testing.T) {
	tests := []struct{ name, want string }{
		{"sess.set", "sid payload [TTL seconds]"},
		{"sess.fset", "sid field json [field json ...]"},
		{"sess.destroy", "sid [sid ...]"},
		{"sess.scan", "cursor [COUNT count]"},
		{"sess.sweep", "[DRYRUN] [COUNT count]"},
		{"set", "key value [NX|XX] [GET] [EX seconds|PX milliseconds|EXAT unix-time-seconds|PXAT unix-time-milliseconds|KEEPTTL]"},
		{"scan", "cursor [MATCH pattern] [COUNT count] [TYPE type]"},
		{"mset", "key value [key value ...]"},
		{"eval", "script numkeys [key [key ...]] [arg [arg ...]]"},
		{"hello", "[protover [AUTH username password] [SETNAME clientname]]"},
		{"memory|usage", "key [SAMPLES count]"},
		{"client|setinfo", "LIB-NAME libname|LIB-VER libver"},
	}
	for _, tt := range tests {
		d, _ := docOf(tt.name)
		if got := hint(parseDocArgs(d.args)); got != tt.want {
			t.Errorf("%s hint = %q, want %q", tt.name, got, tt.want)
		}
	}
}

func TestCommandDescribesTheRegistry(t *testing.T) {
	f := newFixture(t, nil)
	n := strconv.Itoa(len(f.e.registry))
	f.expect("COMMAND COUNT", ":"+n)
	list := f.one("COMMAND LIST")
	if got := strings.Count(list, "$"); strconv.Itoa(got) != n {
		t.Errorf("COMMAND LIST has %d names, want %s", got, n)
	}
	for _, want := range []string{"$sess.set", "$memory", "$scan"} {
		if !strings.Contains(list, want) {
			t.Errorf("COMMAND LIST lacks %s", want)
		}
	}
	docs := f.one("COMMAND DOCS")
	if got := strings.Count(docs, "$summary"); got < len(f.e.registry) {
		t.Errorf("COMMAND DOCS has %d summaries, want at least %d", got, len(f.e.registry))
	}
	// One command, in RESP2 a flat array name, docs.
	f.expect("COMMAND DOCS sess.set nosuch",
		"[$sess.set [$summary $"+sessDocs["sess.set"].summary+" $since $1.0.0 $group $sessions $complexity $"+sessDocs["sess.set"].complexity+
			" $arguments [[$name $sid $type $key] [$name $payload $type $string] [$name $seconds $type $integer $token $TTL $flags [+optional]]]]]")
	f.expect("COMMAND INFO sess.get", "[[$sess.get :2 [+readonly] :1 :1 :1 [+@read +@sessions] [] [] []]]")
	f.expect("COMMAND INFO eval", "[[$eval :-3 [+write +movablekeys] :0 :0 :0 [+@write +@scripting] [] [] []]]")
	if got := f.one("COMMAND INFO memory"); !strings.Contains(got, "[$memory|usage :-3 [+readonly] :2 :2 :1 ") {
		t.Errorf("COMMAND INFO memory = %s, want its USAGE subcommand with its key", got)
	}
	sess := f.one("COMMAND LIST FILTERBY PATTERN sess.*")
	if got := strings.Count(sess, "$sess."); got != strings.Count(sess, "$") || got < 18 {
		t.Errorf("COMMAND LIST FILTERBY PATTERN sess.* = %s", sess)
	}
	if got := f.one("COMMAND LIST FILTERBY PATTERN SESS.*"); got != sess {
		t.Errorf("COMMAND LIST FILTERBY PATTERN SESS.* = %s, want what sess.* lists: Redis ignores case there", got)
	}
	if got := f.one("COMMAND LIST FILTERBY ACLCAT sessions"); got != sess {
		t.Errorf("COMMAND LIST FILTERBY ACLCAT sessions = %s, want the SESS.* commands", got)
	}
	f.expect("COMMAND LIST FILTERBY MODULE x", "[]")
	f.expect("COMMAND LIST FILTERBY NOPE x", "-"+msgSyntax)
	if got := f.one("COMMAND HELP"); !strings.Contains(got, "GETKEYS") {
		t.Errorf("COMMAND HELP = %s", got)
	}
}

func TestCommandGetKeys(t *testing.T) {
	f := newFixture(t, nil)
	tests := map[string]string{
		"COMMAND GETKEYS SET sess:a v EX 10":                    "[$sess:a]",
		"COMMAND GETKEYS SESS.SET a {}":                         "[$a]",
		"COMMAND GETKEYS MSET k1 v1 k2 v2":                      "[$k1 $k2]",
		"COMMAND GETKEYS DEL k1 k2 k3":                          "[$k1 $k2 $k3]",
		"COMMAND GETKEYS EVAL 'return 1' 2 sess:a sess:b x":     "[$sess:a $sess:b]",
		"COMMAND GETKEYS EVALSHA abc 1 sess:a":                  "[$sess:a]",
		"COMMAND GETKEYS MEMORY USAGE sess:a":                   "[$sess:a]",
		"COMMAND GETKEYS WATCH k1 k2":                           "[$k1 $k2]",
		"COMMAND GETKEYS get":                                   "-" + msgGetKeysArity,
		"COMMAND GETKEYS NOSUCH a":                              "-" + msgGetKeysInvalidCommand,
		"COMMAND GETKEYS PING":                                  "-" + msgGetKeysNone,
		"COMMAND GETKEYS EVAL 'return 1' 0":                     "-" + msgGetKeysNone,
		"COMMAND GETKEYS EVAL 'return 1' 3 a":                   "-" + msgGetKeysInvalidArgs,
		"COMMAND GETKEYS MEMORY HELP":                           "-" + msgGetKeysNone,
		"COMMAND GETKEYS":                                       "-ERR unknown subcommand 'GETKEYS'. Try COMMAND HELP.",
		"COMMAND GETKEYS HSET sess:h f v":                       "[$sess:h]",
		"COMMAND GETKEYS SCAN 0 MATCH sess:*":                   "-" + msgGetKeysNone,
		"COMMAND GETKEYS GETEX sess:a PERSIST":                  "[$sess:a]",
		"COMMAND GETKEYS SESS.FSET a f 1 g 2":                   "[$a]",
		"COMMAND GETKEYS SESS.EXISTS a b":                       "[$a $b]",
		"COMMAND GETKEYS SESS.IDS":                              "-" + msgGetKeysNone,
		"COMMAND GETKEYS EXPIRE sess:a 10":                      "[$sess:a]",
		"COMMAND GETKEYS FCALL f 1 sess:a":                      "[$sess:a]",
		"COMMAND GETKEYS EVAL_RO 'return 1' 1 sess:a":           "[$sess:a]",
		"COMMAND GETKEYS EVALSHA_RO abc 2 sess:a sess:b sess:c": "[$sess:a $sess:b]",
	}
	for cmd, want := range tests {
		if got := f.one(cmd); got != want {
			t.Errorf("%s = %s, want %s", cmd, got, want)
		}
	}
}

// infoFields parses INFO's text into its fields.
func infoFields(t *testing.T, info string) map[string]string {
	t.Helper()
	fields := map[string]string{}
	for _, l := range strings.Split(strings.TrimPrefix(info, "$"), "\r\n") {
		if k, v, ok := strings.Cut(l, ":"); ok && !strings.HasPrefix(l, "#") {
			fields[k] = v
		}
	}
	return fields
}

func TestInfoForMonitoring(t *testing.T) {
	f := newFixture(t, nil)
	f.one("SESS.SET a {}")
	f.one("SESS.SET b {} TTL 100")
	f.one("SESS.DESTROY b")
	fields := infoFields(t, f.one("INFO"))
	numeric := []string{"connected_clients", "blocked_clients", "used_memory", "used_memory_peak", "maxmemory",
		"total_commands_processed", "total_connections_received", "instantaneous_ops_per_sec", "loading",
		"rdb_bgsave_in_progress", "aof_rewrite_in_progress", "keyspace_hits", "keyspace_misses", "expired_keys", "evicted_keys"}
	for _, k := range numeric {
		v, ok := fields[k]
		if n, err := strconv.ParseInt(v, 10, 64); !ok || err != nil || n < 0 {
			t.Errorf("INFO %s = %q (present %v): want a number >= 0", k, v, ok)
		}
	}
	for _, k := range []string{"used_memory_human", "maxmemory_human", "used_memory_peak_human"} {
		if !strings.HasSuffix(fields[k], "B") && !strings.HasSuffix(fields[k], "K") && !strings.HasSuffix(fields[k], "M") && !strings.HasSuffix(fields[k], "G") {
			t.Errorf("INFO %s = %q", k, fields[k])
		}
	}
	// miniredis answers no INFO keyspace: the key count is its DBSIZE
	// (the session and the tombstone).
	if got := fields["db0"]; !strings.HasPrefix(got, "keys=2,expires=") {
		t.Errorf("INFO db0 = %q, want keys=2,expires=…", got)
	}
	if fields["connected_clients"] != "1" {
		t.Errorf("connected_clients = %q, want 1", fields["connected_clients"])
	}
	// A section alone asks the upstream nothing it does not need.
	if got := f.one("INFO clients"); !strings.Contains(got, "blocked_clients:0") || strings.Contains(got, "used_memory") {
		t.Errorf("INFO clients = %q", got)
	}
}

func TestOpsPerSec(t *testing.T) {
	f := newFixture(t, nil)
	e := f.e
	start := e.started
	e.stats.commands.Store(0)
	if got := e.opsPerSec(start.Add(500 * time.Millisecond)); got != 0 {
		t.Errorf("before a second = %d, want 0", got)
	}
	e.stats.commands.Store(300)
	if got := e.opsPerSec(start.Add(2 * time.Second)); got != 150 {
		t.Errorf("300 commands in 2s = %d/s, want 150", got)
	}
	e.stats.commands.Store(1300)
	if got := e.opsPerSec(start.Add(2500 * time.Millisecond)); got != 150 {
		t.Errorf("within a second of the last sample = %d, want the last rate, 150", got)
	}
	if got := e.opsPerSec(start.Add(4 * time.Second)); got != 500 {
		t.Errorf("1000 commands in 2s = %d/s, want 500", got)
	}
}

func TestBytesToHuman(t *testing.T) {
	tests := map[int64]string{0: "0B", 1023: "1023B", 1536: "1.50K", 5 << 20: "5.00M", 3 << 30: "3.00G"}
	for n, want := range tests {
		if got := bytesToHuman(n); got != want {
			t.Errorf("bytesToHuman(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestMemoryUsage(t *testing.T) {
	f := newFixture(t, func(o *Options) { o.OutsidePrefix = OutsideDeny })
	f.one(`SESS.SET a {"user":"x"}`)
	f.one("HSET sess:h f v")
	f.one("SESS.SET gone {}")
	f.one("SESS.DESTROY gone")
	f.one("SET sess:a_LOCK 1")
	for _, cmd := range []string{"MEMORY USAGE sess:a", "MEMORY USAGE sess:h", "MEMORY USAGE sess:a_LOCK", "memory usage sess:a"} {
		got := f.one(cmd)
		if n, err := strconv.Atoi(strings.TrimPrefix(got, ":")); err != nil || n <= 0 {
			t.Errorf("%s = %s, want a positive byte count", cmd, got)
		}
	}
	tests := map[string]string{
		"MEMORY USAGE sess:gone":             "nil", // a tombstone reads as absent
		"MEMORY USAGE sess:missing":          "nil",
		"MEMORY USAGE other":                 "-NOPERM key 'other' is outside the session namespace",
		"MEMORY USAGE sess:a SAMPLES x":      "-" + msgNotInteger,
		"MEMORY USAGE sess:a SAMPLE 5":       "-" + msgSyntax,
		"MEMORY STATS":                       "-ERR unknown subcommand 'STATS'. Try MEMORY HELP.",
		"MEMORY USAGE":                       "-ERR unknown subcommand 'USAGE'. Try MEMORY HELP.",
		"MEMORY":                             "-ERR wrong number of arguments for 'memory' command",
		"MEMORY USAGE sess:a SAMPLES 5 more": "-" + msgSyntax,
	}
	for cmd, want := range tests {
		if got := f.one(cmd); got != want {
			t.Errorf("%s = %s, want %s", cmd, got, want)
		}
	}
	if got := f.one("MEMORY HELP"); !strings.Contains(got, "+USAGE <key> [SAMPLES <count>]") {
		t.Errorf("MEMORY HELP = %s", got)
	}
}

func TestScanType(t *testing.T) {
	f := newFixture(t, nil)
	f.one("SESS.SET s1 {}")
	f.one("SESS.SET s2 {}")
	f.one("HSET sess:h f v")
	f.one("SESS.SET gone {}")
	f.one("SESS.DESTROY gone")
	tests := map[string]string{
		"SCAN 0 TYPE string COUNT 100":               "[$0 [$sess:s1 $sess:s2]]",
		"SCAN 0 TYPE STRING COUNT 100":               "[$0 [$sess:s1 $sess:s2]]",
		"SCAN 0 TYPE hash COUNT 100":                 "[$0 [$sess:h]]",
		"SCAN 0 TYPE set COUNT 100":                  "[$0 []]", // a typed tombstone is never listed
		"SCAN 0 TYPE string MATCH *s1* COUNT 100":    "[$0 [$sess:s1]]",
		"SCAN 0 TYPE":                                "-" + msgSyntax,
		"SESS.SCAN 0 TYPE string":                    "-" + msgSyntax,
		"SCAN 0 MATCH sess:s* TYPE string COUNT 100": "[$0 [$sess:s1 $sess:s2]]",
	}
	for cmd, want := range tests {
		got := f.one(cmd)
		if got != want && !(strings.Contains(want, "$sess:s1 $sess:s2") && got == strings.Replace(want, "$sess:s1 $sess:s2", "$sess:s2 $sess:s1", 1)) {
			t.Errorf("%s = %s, want %s", cmd, got, want)
		}
	}
	// Whatever the tombstone's type, no TYPE lists it.
	for _, typ := range []string{"string", "hash", "set", "list", "zset", "stream"} {
		if got := f.one("SCAN 0 TYPE " + typ + " COUNT 100"); strings.Contains(got, "gone") {
			t.Errorf("SCAN TYPE %s lists the tombstone: %s", typ, got)
		}
	}
}

// unsupportedCounts is a Metrics that counts the unsupported commands by
// name.
type unsupportedCounts struct {
	nopMetrics
	mu sync.Mutex
	n  map[string]int
}

type namedCounter struct {
	m    *unsupportedCounts
	name string
}

func (c namedCounter) Inc() {
	c.m.mu.Lock()
	c.m.n[c.name]++
	c.m.mu.Unlock()
}

func (m *unsupportedCounts) Unsupported(name string) Counter { return namedCounter{m, name} }

func TestUnsupportedCommandsCounted(t *testing.T) {
	m := &unsupportedCounts{n: map[string]int{}}
	f := newFixture(t, func(o *Options) { o.Metrics = m })
	for _, cmd := range []string{"FLUSHALL", "flushall", "CONFIG SET x y", "NOSUCHCOMMAND", "another-made-up", "GET sess:a", "MULTI", "PSUBSCRIBE ch", "DISCARD"} {
		f.one(cmd)
	}
	want := map[string]int{"flushall": 2, "config": 1, "psubscribe": 1, UnknownCommand: 2}
	m.mu.Lock()
	defer m.mu.Unlock()
	for k, v := range want {
		if m.n[k] != v {
			t.Errorf("unsupported %s = %d, want %d (all: %v)", k, m.n[k], v, m.n)
		}
	}
	if m.n["get"] != 0 || len(m.n) != len(want) {
		t.Errorf("counts = %v, want only %v", m.n, want)
	}
}
