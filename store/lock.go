package store

import "time"

// A lock key (phpredis's <prefix><sid>_LOCK) is written with plain Redis
// commands: SET … NX PX is already atomic and a lock has no tombstone to
// check. Only KEEPTTL needs a script: a plain SET … KEEPTTL would leave a
// new lock without any TTL.

// lockKeepTTLScript is SET … KEEPTTL on a lock: the lock keeps its TTL
// when it has one no longer than max, and gets max otherwise, in the same
// step, so no lock is ever left without a TTL.
// ARGV: value, max ms, then SET's other options (NX or XX, GET). Returns
// SET's own reply.
var lockKeepTTLScript = newScript(`
local r = redis.call('SET', KEYS[1], ARGV[1], 'KEEPTTL', unpack(ARGV, 3))
local p = redis.call('PTTL', KEYS[1])
if p == -1 or p > tonumber(ARGV[2]) then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return r
`)

// LockKeepTTL queues SET key value KEEPTTL with opts (NX or XX, GET) on a
// lock, bounding its TTL by max in the same step. The result is SET's
// reply, as Forward's is.
func (b *Batch) LockKeepTTL(key string, value []byte, max time.Duration, opts ...string) ForwardResult {
	args := make([]interface{}, 0, 2+len(opts))
	args = append(args, value, msArg(max))
	for _, o := range opts {
		args = append(args, o)
	}
	return ForwardResult{cmd: b.script(lockKeepTTLScript, false, key, args...)}
}
