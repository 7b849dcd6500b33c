#!/usr/bin/env bash
# redisperf.sh — where Redis's own CPU goes behind sessproxy builds: perf samples
# redis-server for 3 s while redis-benchmark writes through each build (SET of a 71-byte
# value, -P 16, 50 clients), then prints Redis's top symbols and the share spent turning
# numbers into text and back (printf and strtod, which Lua number arguments cost).
#
#   bash bench/redisperf.sh NAME=BINARY [NAME=BINARY ...]
#
# Needs perf (Debian package linux-perf). Ports: REDISPERF_PORT [26395] and the next one.
set -euo pipefail

(($# >= 1)) || { sed -n '2,9p' "$0" >&2; exit 2; }
command -v perf >/dev/null || { echo "redisperf: perf not found" >&2; exit 1; }
port=${REDISPERF_PORT:-26395}
workdir=$(mktemp -d "${TMPDIR:-/tmp}/redisperf.XXXXXX")
# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh"

value='{"cookie":{"originalMaxAge":86400000},"user":"u123456789","n":1}'
for spec in "$@"; do
	name=${spec%%=*} bin=${spec#*=}
	redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no --dir "$workdir" >/dev/null 2>&1 &
	redis=$!
	pids+=("$redis")
	wait_port "$port"
	"$bin" -listen "127.0.0.1:$((port + 1))" -upstream "127.0.0.1:$port" -mode standalone -log-level error &
	proxy=$!
	pids+=("$proxy")
	wait_port "$((port + 1))"
	redis-benchmark -p "$((port + 1))" -q -n 2000000 -c 50 -r 100000 -P 16 SET 'sess:__rand_int__' "$value" >/dev/null 2>&1 &
	bench=$!
	pids+=("$bench")
	sleep 1
	perf record -q -e cpu-clock -F 2000 -p "$redis" -o "$workdir/perf.data" -- sleep 3 >/dev/null 2>&1
	kill "$bench" "$proxy" "$redis" 2>/dev/null || true
	wait "$bench" "$proxy" "$redis" 2>/dev/null || true
	perf report -i "$workdir/perf.data" --no-children --stdio --sort symbol 2>/dev/null |
		grep -E '^ +[0-9]' >"$workdir/$name.txt" || true
	share=$(awk '/printf|hack_digit|mpn_|strtod|str_to_mpn|round_and_return/ { gsub(/%/, "", $1); s += $1 }
		END { printf "%.1f", s }' "$workdir/$name.txt")
	echo "== $name: ${share}% of Redis's samples in printf/strtod; top symbols:"
	head -n 12 "$workdir/$name.txt"
done
