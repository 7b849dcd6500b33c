package store

import (
	"crypto/sha1"
	"encoding/hex"
	"errors"
)

// Guard makes an operation that answers the previous value (SET … GET,
// GETSET, GETEX, GETDEL) leave the key alone until the proxy knows it can
// decode that value. Without it, a value the codec cannot read (encrypted
// under a key id since removed, say) would be overwritten, destroyed or
// given a new TTL, and only then answered with an error: a client that gets
// an error reply must be able to count on nothing having happened.
type Guard string

const (
	// NoGuard: act whatever the previous value.
	NoGuard Guard = ""
	// GuardHeader: act unless the previous value carries a codec header.
	// Only such a value can fail to decode (store/codec), so the common case
	// still takes one round trip.
	GuardHeader Guard = "h"
)

// GuardUnchanged: act only if the previous value is still stored, the one
// the proxy has decoded. A missing key needs no decoding, so it is acted on
// too.
func GuardUnchanged(stored []byte) Guard {
	sum := sha1.Sum(stored)
	return Guard(hex.EncodeToString(sum[:]))
}

// ErrCheckPrevious is a guarded operation's answer when it did nothing: the
// previous value it returns must be decoded, then the operation queued again
// with GuardUnchanged of that value.
var ErrCheckPrevious = errors.New("previous value must be decoded before the write")

// luaGuard is shared by the scripts that take a Guard: unchecked says
// whether the previous value v must be returned to the proxy, untouched.
// "\0SP" is the codec header's magic (store/codec).
const luaGuard = `
local function unchecked(v, guard)
  if guard == '' or not v then return false end
  if guard == 'h' then return string.sub(v, 1, 3) == '\0SP' end
  return redis.sha1hex(v) ~= guard
end
`
