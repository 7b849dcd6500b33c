package store

import "github.com/redis/go-redis/v9"

// The scripts are single-key, so they run on the key's own node in a
// cluster, and each makes "check the tombstone, then write" one atomic step
// inside Redis. A tombstone is the literal value TOMBSTONE; checking STRLEN
// first keeps the common case (a live 1 KB session) from copying the value
// into Lua.
//
// Numbers bound for Redis go as strings: a literal '0', or the ARGV string
// as the proxy sent it unless the script changed the figure. Redis turns a
// Lua number argument into text with printf, and on the write path that
// showed in a profile of Redis (bench/results/2026-11-22-16-lua-strings.txt).

// Tombstone is the value written at a destroyed session's key (the format
// connect-redis-session uses).
const Tombstone = "TOMBSTONE"

// TombstoneFormat is how a destroyed session's key is marked.
type TombstoneFormat string

// Tombstone formats. Every script recognises both, whatever the
// namespace's format, so a proxy switched from one to the other still
// refuses writes to the tombstones the other left.
const (
	// TombstoneString is the string TOMBSTONE (connect-redis-session's).
	TombstoneString TombstoneFormat = "string"
	// TombstoneTyped is a set holding the one member TOMBSTONE: not a
	// string, so Redis's own SET … GET refuses to overwrite it
	// (WRONGTYPE), atomically and without writing, and a guarded write
	// needs no script (Write.Native). Not a hash, which a hash session is.
	TombstoneTyped TombstoneFormat = "typed"
)

// luaTypedTomb is shared by the scripts that meet a key that is not a
// string: typed_tomb(k) reports whether it is a typed tombstone.
const luaTypedTomb = `
local function typed_tomb(k)
  return redis.call('TYPE', k)['ok'] == 'set' and redis.call('SISMEMBER', k, 'TOMBSTONE') == 1
end
`

// luaLifetime is shared by the scripts that enforce ttl.absolute. A
// session's creation time is in its stored header (store/codec): magic
// "\0SP1", a flags byte whose bit 5 says the 13 ASCII digits of Unix
// milliseconds at bytes 6-18 are there.
const luaLifetime = `
local function created_digits(h)
  if #h >= 18 and string.sub(h, 1, 4) == '\0SP1' and math.floor(string.byte(h, 5) / 32) % 2 == 1 then
    return string.sub(h, 6, 18)
  end
  return nil
end
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
`

// Each operation's script is in the operation's own file (write.go,
// destroy.go, cas.go…), made with newScript, which registers it.
var (
	// allScripts are the proxy's scripts, loaded on every master at start
	// and after a NOSCRIPT (Store.loadScripts).
	allScripts []*redis.Script
	// scriptSources maps each script's SHA-1 to its source, so a
	// transaction can send EVAL rather than EVALSHA (a client's script
	// carries its own, UserScript): inside MULTI, a NOSCRIPT (a node
	// restarted or failed over) would fail that one command while the
	// others ran, and it cannot be sent again.
	scriptSources = map[string]string{}
)

// newScript returns the script of src, registered. Called only while the
// package's variables are initialised.
func newScript(src string) *redis.Script {
	sc := redis.NewScript(src)
	allScripts = append(allScripts, sc)
	scriptSources[sc.Hash()] = src
	return sc
}
