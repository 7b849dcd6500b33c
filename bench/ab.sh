#!/usr/bin/env bash
# ab.sh — a quick side-by-side of proxy variants at pipeline depth 1: GET and SET of a
# small value through each, against one fresh redis-server, with redis-benchmark's
# throughput and p99 per target, interleaved round by round. For trying a change (a
# build, a flag, an environment variable) before a full `make bench`.
# AB_WORKLOADS picks the workloads (default "GET SET"); GET-P16 and SET-P16 are the same
# at depth 16; SESS.SET is SESS.SET of a 1 KB session, SESS.SET-P16 the same at depth 16
# (Redis itself gets SET … EX 86400), SESS.GET and SESS.GET-P16 read that session back
# (Redis itself gets GET; the key space is filled with it first, so any GET workload after
# them reads 1 KB values). GET-MISS, GET-MISS-P16 and SESS.GET-MISS-P16 read keys that
# do not exist (sess:miss…). AB_CLIENTS is redis-benchmark's -c (default 50).
#
#   bash bench/ab.sh ROUNDS REQUESTS NAME='COMMAND' [NAME='COMMAND' ...]
#
# Each COMMAND runs with bash -c; $UP is the Redis address and $LISTEN the address the
# target must listen on. For example, sessproxy with Go's default GC against the shipped
# setting:
#
#   go build -o /tmp/sp ./cmd/sessproxy
#   bash bench/ab.sh 3 50000 \
#     gogc100='GOGC=100 exec /tmp/sp -listen $LISTEN -upstream $UP -mode standalone -log-level error -metrics-addr ""' \
#     default='exec /tmp/sp -listen $LISTEN -upstream $UP -mode standalone -log-level error -metrics-addr ""'
#
# The targets run side by side, so at most one may keep the default metrics.addr
# (127.0.0.1:9380); -metrics-addr "" turns the metrics server off.
#
# Prints one line per workload and round: TARGET=rps/p99_ms for direct Redis and each
# target. Ports: Redis on AB_PORT [27000], the targets on the ports after it.
set -euo pipefail

(($# >= 3)) || { sed -n '2,21p' "$0" >&2; exit 2; }
rounds=$1 requests=$2
shift 2
base=${AB_PORT:-27000}
workdir=$(mktemp -d "${TMPDIR:-/tmp}/ab.XXXXXX")
# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh"

setsid redis-server --port "$base" --bind 127.0.0.1 --save "" --appendonly no --dir "$workdir" >/dev/null 2>&1 &
pids+=($!)
wait_port "$base"
names=(direct)
declare -A ports=([direct]=$base)
port=$base
for spec in "$@"; do
	name=${spec%%=*}
	port=$((port + 1))
	UP=127.0.0.1:$base LISTEN=127.0.0.1:$port setsid bash -c "${spec#*=}" >"$workdir/$name.log" 2>&1 &
	pids+=($!)
	names+=("$name")
	ports[$name]=$port
done
for name in "${names[@]}"; do wait_port "${ports[$name]}"; done

value='{"cookie":{"originalMaxAge":86400000},"user":"u123456789","n":1}'
# A 1 KB express-session object, for SESS.SET.
session=$(printf '{"cookie":{"originalMaxAge":86400000,"httpOnly":true,"path":"/"},"pad":"%s"}' \
	"$(head -c 950 /dev/zero | tr '\0' x)")
# fill VALUE [EX]: every key redis-benchmark can pick (sess:000000000000 to
# sess:000000099999) holds VALUE, as make bench's populate leaves them for its reads.
fill() {
	LC_ALL=C awk -v v="$1" -v ex="${2:-}" 'BEGIN {
		for (i = 0; i < 100000; i++) {
			k = sprintf("sess:%012d", i)
			printf "*%d\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n", ex == "" ? 3 : 5, length(k), k, length(v), v
			if (ex != "") printf "$2\r\nEX\r\n$%d\r\n%s\r\n", length(ex), ex
		}
	}' | redis-cli -p "$base" --pipe >/dev/null
}
fill "$value"
for workload in ${AB_WORKLOADS:-GET SET}; do
	depth=1
	case $workload in
	GET) args=(GET 'sess:__rand_int__') ;;
	SET) args=(SET 'sess:__rand_int__' "$value") ;;
	GET-P16) depth=16 args=(GET 'sess:__rand_int__') ;;
	SET-P16) depth=16 args=(SET 'sess:__rand_int__' "$value") ;;
	SESS.SET) args=(SESS.SET __rand_int__ "$session") ;;
	SESS.SET-P16) depth=16 args=(SESS.SET __rand_int__ "$session") ;;
	SESS.GET) args=(SESS.GET __rand_int__) ;;
	SESS.GET-P16) depth=16 args=(SESS.GET __rand_int__) ;;
	GET-MISS) args=(GET 'sess:miss__rand_int__') ;;
	GET-MISS-P16) depth=16 args=(GET 'sess:miss__rand_int__') ;;
	SESS.GET-MISS-P16) depth=16 args=(SESS.GET miss__rand_int__) ;;
	*) echo "ab.sh: unknown workload $workload (GET, SET, SESS.SET, SESS.GET, GET-MISS, GET-P16, SET-P16, SESS.SET-P16, SESS.GET-P16, GET-MISS-P16, SESS.GET-MISS-P16)" >&2; exit 2 ;;
	esac
	if [[ ${args[0]} == SESS.GET && -z ${sessions_written:-} ]]; then
		fill "$session" 86400
		sessions_written=1
	fi
	for ((round = 1; round <= rounds; round++)); do
		line="${workload%-P16} -P $depth round $round:"
		for name in "${names[@]}"; do
			target_args=("${args[@]}")
			# Redis itself has no SESS.SET: it gets the SET EX a session store sends.
			[[ $name == direct && ${args[0]} == SESS.SET ]] && target_args=(SET 'sess:__rand_int__' "$session" EX 86400)
			[[ $name == direct && ${args[0]} == SESS.GET ]] && target_args=(GET "sess:${args[1]}")
			# --csv: rps is the 7th column from the end, p99 the 2nd.
			figures=$(timeout 120 redis-benchmark -p "${ports[$name]}" --csv -q -n "$requests" -c "${AB_CLIENTS:-50}" \
				-r 100000 -P "$depth" "${target_args[@]}" 2>/dev/null | tail -n 1 |
				awk -F, '{ r = $(NF - 6); p = $(NF - 1); gsub(/"/, "", r); gsub(/"/, "", p); printf "%.0f/%s", r, p }') ||
				figures=error
			line+=" $name=${figures:-error}"
		done
		echo "$line"
	done
done
