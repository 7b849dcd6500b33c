#!/usr/bin/env bash
# luacost.sh — what the write path's Lua costs Redis itself, against a plain SET: Redis's
# own INFO commandstats (usec_per_call) after redis-benchmark calls each variant with
# EVALSHA, 16 keys of 1000-byte values per call. Run twice or more: the VM is noisy.
#
#   bash bench/luacost.sh
set -euo pipefail

port=${LUACOST_PORT:-26390}
workdir=$(mktemp -d "${TMPDIR:-/tmp}/luacost.XXXXXX")
redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no --dir "$workdir" >/dev/null 2>&1 &
pid=$!
trap 'kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; rm -rf "$workdir"' EXIT
for _ in $(seq 50); do
	[[ $(redis-cli -p "$port" ping 2>/dev/null) == PONG ]] && break
	sleep 0.1
done

value=$(head -c 1000 /dev/zero | tr '\0' x)
declare -A scripts
# The shipped setManyScript (store/scripts.go), minus the delete branch.
scripts[shipped]='local out = {}
for i = 1, #KEYS do
  local k = KEYS[i]
  local head = redis.pcall("GETRANGE", k, 0, 9)
  if type(head) == "table" and head.err then out[i] = head
  elseif head == "TOMBSTONE" then out[i] = -1
  else
    local r = redis.pcall("SET", k, ARGV[2 * i - 1], "PX", ARGV[2 * i])
    if type(r) == "table" and r.err then out[i] = r else out[i] = 1 end
  end
end
return out'
# The same check and write without pcall and error tables.
scripts[call]='local out = {}
for i = 1, #KEYS do
  local k = KEYS[i]
  if redis.call("GETRANGE", k, 0, 9) == "TOMBSTONE" then out[i] = -1 else
  redis.call("SET", k, ARGV[2 * i - 1], "PX", ARGV[2 * i]); out[i] = 1 end
end
return out'
# No tombstone check at all: the least a script write can cost.
scripts[set_only]='local out = {}
for i = 1, #KEYS do
  redis.call("SET", KEYS[i], ARGV[2 * i - 1], "PX", ARGV[2 * i])
  out[i] = 1
end
return out'

for name in shipped call set_only; do
	sha=$(redis-cli -p "$port" script load "${scripts[$name]}")
	args=(EVALSHA "$sha" 16)
	vals=()
	for i in $(seq 1 16); do
		args+=("sess:{t}$i")
		vals+=("$value" 86400000)
	done
	redis-cli -p "$port" config resetstat >/dev/null
	redis-benchmark -p "$port" -q -n 20000 -c 50 "${args[@]}" "${vals[@]}" >/dev/null 2>&1
	usec=$(redis-cli -p "$port" info commandstats | grep -o 'cmdstat_evalsha:.*usec_per_call=[0-9.]*' | grep -o '[0-9.]*$')
	awk -v n="$name" -v u="$usec" 'BEGIN { printf "%-9s %8.2f µs per 16-key call, %5.2f µs per key\n", n, u, u / 16 }'
done
redis-cli -p "$port" config resetstat >/dev/null
redis-benchmark -p "$port" -q -n 200000 -c 50 -P 16 SET 'sess:{t}1' "$value" PX 86400000 >/dev/null 2>&1
usec=$(redis-cli -p "$port" info commandstats | grep -o 'cmdstat_set:.*usec_per_call=[0-9.]*' | grep -o '[0-9.]*$')
echo "plain SET $usec µs per call (-P 16)"
