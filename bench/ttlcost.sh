#!/usr/bin/env bash
# ttlcost.sh — what a session key's TTL costs Redis, and what a proxy that adds one can
# reach at best. One fresh redis-server, redis-benchmark -c 50 -P 16 (TTLCOST_DEPTH) over
# 100,000 keys on an empty key space (as make bench's write rows), round by round, two
# workloads. SET, make bench's 71-byte value (bench/common.sh):
#
#   direct SET            Redis, make bench's direct row (no TTL)
#   direct SET+TTL        Redis, sent what sessproxy sends it for that SET: SET … PX … GET
#   twemproxy SET         nutcracker forwarding the plain SET, make bench's twemproxy row
#   twemproxy SET+TTL     nutcracker forwarding SET … PX … GET: a C proxy's rate when
#                         Redis does sessproxy's work, and nothing checks the value
#   sessproxy SET         the proxy under test, sent the plain SET (it adds the TTL)
#
# and SESS.SET, make bench's 1 KB session: direct and twemproxy get SET … EX 86400 (what
# connect-redis sends, make bench's rows) and SET … PX … GET; sessproxy gets SESS.SET.
#
# For each: requests a second and its ratio to the first row in the same round, Redis's
# own microseconds per call (INFO commandstats, cmdstat_set), and the CPU microseconds per
# request of Redis and of the proxy in between (/proc, user+system).
#
#   bash bench/ttlcost.sh ROUNDS SESSPROXY_BINARY
#
# TTLCOST_REQUESTS is redis-benchmark's -n [300000]. Ports: TTLCOST_PORT [26400] and the
# three after it.
set -euo pipefail

(($# == 2)) || { sed -n '2,26p' "$0" >&2; exit 2; }
rounds=$1 proxy_bin=$2
depth=${TTLCOST_DEPTH:-16}
requests=${TTLCOST_REQUESTS:-300000}
base=${TTLCOST_PORT:-26400}
workdir=$(mktemp -d "${TMPDIR:-/tmp}/ttlcost.XXXXXX")
# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh"
# shellcheck source=bench/common.sh
source "$(dirname "$0")/common.sh"
PATH=$PATH:/usr/sbin # Debian installs nutcracker there

setsid redis-server --port "$base" --bind 127.0.0.1 --save "" --appendonly no --dir "$workdir" >/dev/null 2>&1 &
redis=$!
pids+=("$redis")
wait_port "$base"
twemproxy_config "127.0.0.1:$((base + 1))" "127.0.0.1:$base" >"$workdir/tw.yml"
setsid nutcracker -c "$workdir/tw.yml" -s "$((base + 3))" -a 127.0.0.1 >/dev/null 2>&1 &
twemproxy=$!
pids+=("$twemproxy")
# make bench's proxy config: typed tombstones written natively at once.
printf '[tombstone]\ntransition = "1ms"\n' >"$workdir/proxy.toml"
setsid "$proxy_bin" -config "$workdir/proxy.toml" -listen "127.0.0.1:$((base + 2))" -upstream "127.0.0.1:$base" \
	-mode standalone -log-level error -metrics-addr "" >"$workdir/proxy.log" 2>&1 &
proxy=$!
pids+=("$proxy")
wait_port "$((base + 1))"
wait_port "$((base + 2))"

# make bench's values: SMALL_JSON and its 1 KB session.
value=$SMALL_JSON
session=$(session_json 1024)

ticks() { awk '{ sub(/.*\) /, ""); print $12 + $13 }' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)

# run NAME PORT MIDDLE_PID ARGS...: one redis-benchmark run on a key space as make bench
# leaves it for writes (empty), printed as one line.
run() {
	local name=$1 port=$2 middle=$3
	shift 3
	redis-cli -p "$base" flushall >/dev/null
	redis-cli -p "$base" config resetstat >/dev/null
	local r0 m0=0 r1 m1=0 rps
	r0=$(ticks "$redis")
	[[ $middle == - ]] || m0=$(ticks "$middle")
	rps=$(redis-benchmark -p "$port" --csv -q -n "$requests" -c 50 -r 100000 -P "$depth" "$@" 2>/dev/null |
		tail -n 1 | awk -F, '{ r = $(NF - 6); gsub(/"/, "", r); printf "%.0f", r }')
	r1=$(ticks "$redis")
	[[ $middle == - ]] || m1=$(ticks "$middle")
	local usec
	usec=$(redis-cli -p "$base" info commandstats | tr -d '\r' |
		awk -F'usec_per_call=' '/^cmdstat_set:/ { split($2, a, ","); print a[1] }')
	printf '%s %s %s %s %s\n' "$name" "$rps" "$usec" \
		"$(awk -v t=$((r1 - r0)) -v hz="$hz" -v n="$requests" 'BEGIN { printf "%.2f", t * 1e6 / hz / n }')" \
		"$(awk -v t=$((m1 - m0)) -v hz="$hz" -v n="$requests" 'BEGIN { printf "%.2f", t * 1e6 / hz / n }')"
}

echo "redis-benchmark -c 50 -P $depth -n $requests -r 100000; columns: requests/s, ratio to the workload's first row,"
echo "Redis µs per SET (commandstats), Redis CPU µs per request, the middle process's CPU µs per request"
echo "session: ${#session} bytes"
for ((round = 1; round <= rounds; round++)); do
	{
		run "direct-SET" "$base" - SET 'sess:__rand_int__' "$value"
		run "direct-SET+TTL" "$base" - SET 'sess:__rand_int__' "$value" PX 86400000 GET
		run "twemproxy-SET" "$((base + 1))" "$twemproxy" SET 'sess:__rand_int__' "$value"
		run "twemproxy-SET+TTL" "$((base + 1))" "$twemproxy" SET 'sess:__rand_int__' "$value" PX 86400000 GET
		run "sessproxy-SET" "$((base + 2))" "$proxy" SET 'sess:__rand_int__' "$value"
	} >"$workdir/set"
	{
		run "direct-SET-EX" "$base" - SET 'sess:__rand_int__' "$session" EX 86400
		run "direct-SET+TTL" "$base" - SET 'sess:__rand_int__' "$session" PX 86400000 GET
		run "twemproxy-SET-EX" "$((base + 1))" "$twemproxy" SET 'sess:__rand_int__' "$session" EX 86400
		run "twemproxy-SET+TTL" "$((base + 1))" "$twemproxy" SET 'sess:__rand_int__' "$session" PX 86400000 GET
		run "sessproxy-SESS.SET" "$((base + 2))" "$proxy" SESS.SET '__rand_int__' "$session"
	} >"$workdir/session"
	for workload in set session; do
		awk -v round="$round" -v w="$workload" 'NR == 1 { first = $2 }
			{ printf "round %d %-7s %-18s %8d rps  %.2f  redis %s µs/call  redis %s µs/req  middle %s µs/req\n",
				round, w, $1, $2, $2 / first, $3, $4, $5 }' "$workdir/$workload"
	done
done
