package main

import (
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/BurntSushi/toml"
)

// A preset is what makes one framework's session store work through the
// proxy with no other setting: its key prefix, codec, locks and tombstone
// behaviour, as TOML applied over the defaults and under the config file
// and the flags, so explicit keys override it. Each preset's choices are
// explained in README.md, "Frameworks".
type preset struct {
	name      string
	framework string // what it is for, as `sessproxy presets` prints it
	toml      string
}

// presets, in the order `sessproxy presets` prints them.
var presets = []preset{
	{"connect-redis", "Express: connect-redis 7, 8 and 10 over node-redis or ioredis (JSON, sess:)", `
[session]
prefix = "sess:"
[codec]
format = "json"
`},
	// phpredis throws RedisException for every error reply whose code is
	// not ERR, so a late write after session_destroy() refused with
	// TOMBSTONE would be a fatal error: the refusal is answered as success
	// and logged instead (tombstone.on_write = "ignore").
	{"phpredis", "PHP native sessions: session.save_handler = redis (serialized PHP, PHPREDIS_SESSION:, _LOCK locks)", `
[session]
prefix = "PHPREDIS_SESSION:"
lock_suffixes = ["_LOCK"]
[codec]
format = "raw"
[tombstone]
on_write = "ignore"
`},
	// redis-rack raises Redis::CommandError on any error reply, in the
	// middleware at the end of the request.
	{"redis-rack", "Rails/Rack: Rack::Session::Redis from redis-rack (Marshal, rack:session:)", `
[session]
prefix = "rack:session:"
[codec]
format = "raw"
[tombstone]
on_write = "ignore"
`},
	// django-redis keys are KEY_PREFIX:VERSION:key, so the sessions of the
	// cache backend live at :1:django.contrib.sessions.cache<key>; the rest
	// of the cache shares the server and must pass.
	{"django-redis", "Django: SESSION_ENGINE cache (or cached_db) on django-redis (pickle, :1:django.contrib.sessions.cache)", `
[session]
prefix = ":1:django.contrib.sessions.cache"
outside_prefix = "passthrough"
[codec]
format = "raw"
[tombstone]
on_write = "ignore"
`},
	// Flask-Session SETEXes every session for PERMANENT_SESSION_LIFETIME,
	// 31 days by default: ttl.max's default of 30 days would cut a day off
	// every idle session.
	{"flask-session", "Flask: Flask-Session with SESSION_TYPE = \"redis\" (pickle, session:, 31-day lifetime)", `
[session]
prefix = "session:"
[codec]
format = "raw"
[ttl]
max = "31d"
[tombstone]
on_write = "ignore"
`},
	{"gorilla-redistore", "Go: gorilla/sessions with boj/redistore (gob, session_)", `
[session]
prefix = "session_"
[codec]
format = "raw"
[tombstone]
on_write = "ignore"
`},
	{"connect-redis-session", "Express: connect-redis-session (JSON, sessions:, string tombstones for 300 s; emulated from its documentation)", `
[session]
prefix = "sessions:"
[codec]
format = "json"
[tombstone]
enabled = true
grace = "300s"
format = "string"
`},
	// alt-session joins its prefix ("sess") and the id with ":" (our choice:
	// its documentation leaves the separator open).
	{"alt-session", "Express: alt-session, one hash per session, 300 s idle timeout (sess:; emulated from its documentation)", `
[session]
prefix = "sess:"
[ttl]
idle = "300s"
`},
}

func findPreset(name string) (preset, error) {
	for _, p := range presets {
		if p.name == name {
			return p, nil
		}
	}
	names := make([]string, len(presets))
	for i, p := range presets {
		names[i] = p.name
	}
	sort.Strings(names)
	return preset{}, fmt.Errorf("unknown preset %q (one of: %s; `sessproxy presets` prints them)", name, strings.Join(names, ", "))
}

// apply decodes the preset over cfg.
func (p preset) apply(cfg *Config) error {
	if _, err := toml.Decode(p.toml, cfg); err != nil {
		return fmt.Errorf("preset %s: %w", p.name, err) // a bug: the presets are tested
	}
	return nil
}

// printPresets writes every preset's settings, for `sessproxy presets`.
func printPresets(w io.Writer) {
	for i, p := range presets {
		if i > 0 {
			fmt.Fprintln(w)
		}
		fmt.Fprintf(w, "# -preset %s: %s\n", p.name, p.framework)
		fmt.Fprint(w, strings.TrimPrefix(p.toml, "\n"))
	}
}
