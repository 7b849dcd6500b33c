#!/usr/bin/env bash
# bench.sh — throughput and p99 latency of direct Redis, sessproxy, twemproxy
# (nutcracker) and three floors, all in front of one fresh redis-server, measured with
# redis-benchmark; and the CPU time each process spent per request, read from /proc.
# The floors are what a proxy costs before it does any work: bench/redconfloor is
# redcon forwarding every command on one shared upstream connection (the leanest
# proxy on this project's stack), bench/gofloor a Go relay that only copies bytes,
# bench/epollfloor twemproxy's design in Go (one thread, one epoll loop, no goroutine
# per connection) forwarding on one shared upstream connection.
#
#   make bench                              # or: bash bench/bench.sh
#   BENCH_N=2000 BENCH_ROUNDS=1 make bench  # quick smoke run
#
# Environment (defaults in brackets):
#   BENCH_N        requests per redis-benchmark run [100000]
#   BENCH_ROUNDS   rounds; every figure is the median over rounds, every ratio the median
#                  of the rounds' own ratios (each round's targets ran back to back) [3]
#   BENCH_CLIENTS  redis-benchmark -c [50]
#   BENCH_KEYS     redis-benchmark -r, the key space sess:000000000000.. [100000]
#   BENCH_TIMEOUT  seconds before one redis-benchmark run counts as failed [300]
#   PROXY_BIN      a prebuilt sessproxy binary [go build ./cmd/sessproxy]
#   PROXY_CMD      instead of sessproxy, run this with bash -c; PROXY_PORT, REDIS_PORT and
#                  WORKDIR are set. Start the proxy with exec, so the CPU column reads the
#                  proxy's /proc and not the shell's. For testing this script, e.g.
#                  PROXY_CMD='exec redis-server --port $PROXY_PORT --save ""'
#   PROXY_STANDIN  "twemproxy": use a second nutcracker as the proxy (testing this script)
#   BENCH_CPUS_REDIS, BENCH_CPUS_PROXY, BENCH_CPUS_CLIENT
#                  CPU lists (taskset -c) for redis-server, the processes between
#                  redis-benchmark and Redis (sessproxy, twemproxy, the floors), and
#                  redis-benchmark [unpinned]; bench/multicore.sh sets them
#   BENCH_GOMAXPROCS  GOMAXPROCS of sessproxy and the Go floors [Go's default]
#   BENCH_DRY_RUN  1: print the commands that would run, start nothing
#
# Rounds are interleaved (direct, proxy, twemproxy, then the next workload) so drift in
# the machine's speed hits every target alike. A failed run prints "error" in its cell
# and the script exits non-zero at the end, so a broken proxy never looks like a pass.
set -euo pipefail

# Debian installs nutcracker in /usr/sbin, which is not on a normal user's PATH.
PATH="$PATH:/usr/sbin:/sbin"
cd "$(dirname "$0")/.."
# shellcheck source=bench/common.sh
source bench/common.sh

BENCH_N=${BENCH_N:-100000}
BENCH_ROUNDS=${BENCH_ROUNDS:-3}
BENCH_CLIENTS=${BENCH_CLIENTS:-50}
BENCH_KEYS=${BENCH_KEYS:-100000}
BENCH_TIMEOUT=${BENCH_TIMEOUT:-300}
TARGETS=(direct proxy twemproxy redconfloor gofloor epollfloor)
CLK_TCK=$(getconf CLK_TCK)
DRY_RUN=${BENCH_DRY_RUN:-}

# The prefixes that pin each role to its CPUs and set the Go processes' GOMAXPROCS;
# taskset and env exec their command, so the PID (and /proc's CPU time) stays its own.
PIN_REDIS=() PIN_PROXY=() PIN_CLIENT=() GO_ENV=()
[[ -n ${BENCH_CPUS_REDIS:-} ]] && PIN_REDIS=(taskset -c "$BENCH_CPUS_REDIS")
[[ -n ${BENCH_CPUS_PROXY:-} ]] && PIN_PROXY=(taskset -c "$BENCH_CPUS_PROXY")
[[ -n ${BENCH_CPUS_CLIENT:-} ]] && PIN_CLIENT=(taskset -c "$BENCH_CPUS_CLIENT")
[[ -n ${BENCH_GOMAXPROCS:-} ]] && GO_ENV=(env "GOMAXPROCS=$BENCH_GOMAXPROCS")

log() { printf '%s\n' "$*" >&2; }
die() { log "bench: $*"; exit 1; }

# --- processes -------------------------------------------------------------------------

WORKDIR=$(mktemp -d "${TMPDIR:-/tmp}/sessproxy-bench.XXXXXX")
PIDS=()

# Every process runs in its own process group (setsid), so cleanup also reaches the
# children of a PROXY_CMD shell.
cleanup() {
	local pid
	# ${PIDS[@]+…}: an empty array is "unbound" to set -u in bash before 4.4.
	for pid in ${PIDS[@]+"${PIDS[@]}"}; do
		kill -TERM -- "-$pid" 2>/dev/null || true
	done
	for pid in ${PIDS[@]+"${PIDS[@]}"}; do
		wait "$pid" 2>/dev/null || true
	done
	rm -rf "$WORKDIR"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# start NAME CMD...: run CMD in the background, output to $WORKDIR/NAME.log; sets LAST_PID.
start() {
	local name=$1
	shift
	if [[ -n $DRY_RUN ]]; then
		echo "+ $name: $(printf '%q ' "$@")"
		LAST_PID=
		return
	fi
	setsid "$@" >"$WORKDIR/$name.log" 2>&1 &
	LAST_PID=$!
	PIDS+=("$LAST_PID")
}

# wait_ready NAME PORT PID: poll PING until PONG (10 s), or fail with the process's log.
wait_ready() {
	local name=$1 port=$2 pid=$3 i
	[[ -z $DRY_RUN ]] || return 0
	for ((i = 0; i < 100; i++)); do
		if ! kill -0 "$pid" 2>/dev/null; then
			die "$name exited during startup; its log:"$'\n'"$(tail -n 20 "$WORKDIR/$name.log")"
		fi
		if [[ $(timeout 1 redis-cli -h 127.0.0.1 -p "$port" ping 2>/dev/null) == PONG ]]; then
			return 0
		fi
		sleep 0.1
	done
	die "$name did not answer PING on port $port within 10s; its log:"$'\n'"$(tail -n 20 "$WORKDIR/$name.log")"
}

# free_port VAR: sets VAR to a port nothing listens on, below the ephemeral range
# (32768+) so an outgoing connection cannot grab it, and never one handed out before.
# It sets a variable rather than printing because $(...) would lose USED_PORTS.
USED_PORTS=" "
free_port() {
	local port
	while :; do
		port=$((20000 + RANDOM % 12000))
		[[ $USED_PORTS == *" $port "* ]] && continue
		# A successful connect means something is listening there.
		(exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && continue
		USED_PORTS+="$port "
		printf -v "$1" '%s' "$port"
		return
	done
}

apt_install() {
	local sudo=
	[[ $(id -u) == 0 ]] || sudo=sudo
	log "installing $* with apt-get"
	$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y "$@" ||
		{ $sudo apt-get update && $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y "$@"; }
}

# start_twemproxy NAME PORT: nutcracker with one pool in front of the bench redis-server.
start_twemproxy() {
	local name=$1 port=$2
	twemproxy_config "127.0.0.1:$port" "127.0.0.1:$REDIS_PORT" >"$WORKDIR/$name.yml"
	# -s: the stats port defaults to 22222 for every instance; give each its own.
	local stats_port
	free_port stats_port
	start "$name" ${PIN_PROXY[@]+"${PIN_PROXY[@]}"} nutcracker -c "$WORKDIR/$name.yml" -s "$stats_port" -a 127.0.0.1
	wait_ready "$name" "$port" "$LAST_PID"
}

start_proxy() {
	if [[ ${PROXY_STANDIN:-} == twemproxy ]]; then
		PROXY_DESC="stand-in: a second nutcracker"
		start_twemproxy proxy "$PROXY_PORT"
		PROXY_PID=$LAST_PID
		return
	fi
	if [[ -n ${PROXY_CMD:-} ]]; then
		PROXY_DESC="stand-in: PROXY_CMD=$PROXY_CMD"
		export PROXY_PORT REDIS_PORT WORKDIR
		start proxy ${PIN_PROXY[@]+"${PIN_PROXY[@]}"} bash -c "$PROXY_CMD"
	else
		local bin=${PROXY_BIN:-}
		if [[ -z $bin ]]; then
			command -v go >/dev/null || die "go not found on PATH (needed to build ./cmd/sessproxy)"
			bin=$WORKDIR/sessproxy
			log "building ./cmd/sessproxy"
			[[ -n $DRY_RUN ]] || go build -o "$bin" ./cmd/sessproxy || die "go build ./cmd/sessproxy failed"
		fi
		PROXY_DESC="sessproxy ($bin)"
		# Metrics on, as shipped, on a port of their own: another sessproxy
		# (a developer's, a test's) may hold the default 127.0.0.1:9380.
		# The Redis is fresh, with no string tombstones: typed tombstones'
		# transition is skipped, as a new deployment would (config.example.toml).
		[[ -n $DRY_RUN ]] || printf '[tombstone]\ntransition = "1ms"\n' >"$WORKDIR/sessproxy.toml"
		start proxy ${PIN_PROXY[@]+"${PIN_PROXY[@]}"} ${GO_ENV[@]+"${GO_ENV[@]}"} "$bin" -config "$WORKDIR/sessproxy.toml" \
			-listen "127.0.0.1:$PROXY_PORT" -upstream "127.0.0.1:$REDIS_PORT" \
			-mode standalone -log-level error -metrics-addr 127.0.0.1:0
	fi
	wait_ready proxy "$PROXY_PORT" "$LAST_PID"
	PROXY_PID=$LAST_PID
}

# start_floor NAME PORT: build ./bench/NAME and run it in front of the bench redis-server;
# sets LAST_PID.
start_floor() {
	local name=$1 port=$2 bin=$WORKDIR/$1
	command -v go >/dev/null || die "go not found on PATH (needed to build ./bench/$name)"
	[[ -n $DRY_RUN ]] || go build -o "$bin" "./bench/$name" || die "go build ./bench/$name failed"
	start "$name" ${PIN_PROXY[@]+"${PIN_PROXY[@]}"} ${GO_ENV[@]+"${GO_ENV[@]}"} "$bin" "127.0.0.1:$port" "127.0.0.1:$REDIS_PORT"
	wait_ready "$name" "$port" "$LAST_PID"
}

# --- payloads --------------------------------------------------------------------------

SESSION_JSON=$(session_json 1024)

# populate small|session: write every key redis-benchmark can pick (sess:%012d for
# 0..BENCH_KEYS-1) straight into Redis with redis-cli --pipe, so GET rows always hit and
# compare the same reply size on every target.
populate() {
	local value ex=
	case $1 in
	small) value=$SMALL_JSON ;;
	session) value=$SESSION_JSON ex=86400 ;;
	esac
	LC_ALL=C awk -v n="$BENCH_KEYS" -v v="$value" -v ex="$ex" 'BEGIN {
		for (i = 0; i < n; i++) {
			k = sprintf("sess:%012d", i)
			if (ex == "") printf "*3\r\n$3\r\nSET\r\n"
			else printf "*5\r\n$3\r\nSET\r\n"
			printf "$%d\r\n%s\r\n$%d\r\n%s\r\n", length(k), k, length(v), v
			if (ex != "") printf "$2\r\nEX\r\n$%d\r\n%s\r\n", length(ex), ex
		}
	}' | redis-cli -h 127.0.0.1 -p "$REDIS_PORT" --pipe >"$WORKDIR/populate.log" 2>&1 ||
		die "populate $1 failed: $(cat "$WORKDIR/populate.log")"
	grep -q 'errors: 0,' "$WORKDIR/populate.log" || die "populate $1: $(cat "$WORKDIR/populate.log")"
}

# --- workloads -------------------------------------------------------------------------

# One round runs these steps in order. Every write run starts on an empty key space (so
# check_written can tell what it wrote); "populate" fills it for the reads.
STEPS=(
	"set-small 1" "set-small 16" "populate small" "get-small 1" "get-small 16"
	"sess-set 1" "sess-set 16" "populate session" "sess-get 1" "sess-get 16"
)

# command_for WORKLOAD TARGET: sets CMD to the command redis-benchmark sends. The proxy
# gets the SESS.* form of the session rows; Redis and twemproxy get what connect-redis
# would send for the same operation.
command_for() {
	case $1:$2 in
	set-small:*) CMD=(SET 'sess:__rand_int__' "$SMALL_JSON") ;;
	get-small:*) CMD=(GET 'sess:__rand_int__') ;;
	sess-set:proxy) CMD=(SESS.SET __rand_int__ "$SESSION_JSON") ;;
	sess-set:*) CMD=(SET 'sess:__rand_int__' "$SESSION_JSON" EX 86400) ;;
	sess-get:proxy) CMD=(SESS.GET __rand_int__) ;;
	sess-get:*) CMD=(GET 'sess:__rand_int__') ;;
	*) die "unknown workload $1" ;;
	esac
}

label_for() {
	case $1 in
	set-small) echo "SET ${#SMALL_JSON}B" ;;
	get-small) echo "GET ${#SMALL_JSON}B" ;;
	sess-set) echo "SESS.SET ${#SESSION_JSON}B" ;;
	sess-get) echo "SESS.GET ${#SESSION_JSON}B" ;;
	esac
}

port_for() {
	case $1 in
	direct) echo "$REDIS_PORT" ;;
	proxy) echo "$PROXY_PORT" ;;
	twemproxy) echo "$TWEM_PORT" ;;
	redconfloor) echo "$REDCON_PORT" ;;
	gofloor) echo "$GOFLOOR_PORT" ;;
	epollfloor) echo "$EPOLL_PORT" ;;
	esac
}

# pid_for TARGET: the process between redis-benchmark and Redis (none for direct).
pid_for() {
	case $1 in
	direct) echo "" ;;
	proxy) echo "$PROXY_PID" ;;
	twemproxy) echo "$TWEM_PID" ;;
	redconfloor) echo "$REDCON_PID" ;;
	gofloor) echo "$GOFLOOR_PID" ;;
	epollfloor) echo "$EPOLL_PID" ;;
	esac
}

# cpu_ticks PID: user+system CPU time the process has used, in clock ticks (0 for no
# PID); fails when the process is gone. Fields are counted after the ")" that ends the
# command name.
cpu_ticks() {
	[[ -n $1 ]] || { echo 0; return; }
	awk '{ sub(/.*\) /, ""); print $12 + $13 }' "/proc/$1/stat" 2>/dev/null
}

# us_per_req TICKS: CPU microseconds per request of one run.
us_per_req() { awk -v t="$1" -v hz="$CLK_TCK" -v n="$BENCH_N" 'BEGIN { printf "%.1f", t * 1e6 / hz / n }'; }

# bench TARGET PIPELINE CMD...: one redis-benchmark run; prints "rps p99_ms
# redis_us_per_request middle_us_per_request" or fails.
bench() {
	local target=$1 pipeline=$2 port out figures redis0 mid0 redis1 mid1 pid
	shift 2
	port=$(port_for "$target")
	pid=$(pid_for "$target")
	redis0=$(cpu_ticks "$REDIS_PID") && mid0=$(cpu_ticks "$pid") || return 1
	# timeout: redis-benchmark spins forever at 100% CPU when it cannot connect.
	out=$(timeout "$BENCH_TIMEOUT" ${PIN_CLIENT[@]+"${PIN_CLIENT[@]}"} redis-benchmark -h 127.0.0.1 -p "$port" \
		-c "$BENCH_CLIENTS" -n "$BENCH_N" -r "$BENCH_KEYS" -P "$pipeline" --csv -q "$@" \
		2>"$WORKDIR/bench.err") || return 1
	# The CSV's first column is the command line, unescaped: the JSON's quotes and commas
	# break CSV parsing, so count columns from the right (rps is 7th from the end, p99
	# 2nd). The header alone (the run died) yields "rps", which is not a number.
	redis1=$(cpu_ticks "$REDIS_PID") && mid1=$(cpu_ticks "$pid") || return 1
	figures=$(printf '%s\n' "$out" | tail -n 1 | awk -F, '{
		rps = $(NF - 6); p99 = $(NF - 1); gsub(/"/, "", rps); gsub(/"/, "", p99)
		if (rps !~ /^[0-9.]+$/ || p99 !~ /^[0-9.]+$/ || rps + 0 == 0) exit 1
		print rps, p99
	}') || return 1
	echo "$figures $(us_per_req $((redis1 - redis0))) $(us_per_req $((mid1 - mid0)))"
}

# check_hit WORKLOAD TARGET: a GET row only means something if it reads the stored value (a
# proxy answering nil would look fast), so read one populated key first.
check_hit() {
	local key=000000000042 want got
	want=$SMALL_JSON
	[[ $1 == sess-get ]] && want=$SESSION_JSON
	got=$(timeout 5 redis-cli -h 127.0.0.1 -p "$(port_for "$2")" "${CMD[@]/__rand_int__/$key}" 2>&1) || true
	[[ $got == "$want" ]] && return 0
	echo "${CMD[*]/__rand_int__/$key} returned '${got:0:80}' instead of the stored value" >"$WORKDIR/bench.err"
	return 1
}

# empty_keys: a write run starts on an empty key space.
empty_keys() {
	[[ $(redis-cli -h 127.0.0.1 -p "$REDIS_PORT" flushall 2>&1) == OK ]] || die "FLUSHALL failed"
}

# check_written WORKLOAD: a SET row only means something if the writes reached Redis (a
# proxy answering +OK without writing would look fast): a random key of the ones the run
# wrote must hold the value, read from Redis directly.
check_written() {
	local want=$SMALL_JSON key got
	[[ $1 == sess-set ]] && want=$SESSION_JSON
	key=$(redis-cli -h 127.0.0.1 -p "$REDIS_PORT" randomkey 2>&1)
	got=$(redis-cli -h 127.0.0.1 -p "$REDIS_PORT" get "$key" 2>&1)
	[[ -n $key && $got == "$want" ]] && return 0
	echo "after the run Redis holds '${key:0:40}' = '${got:0:80}', not the written value" >"$WORKDIR/bench.err"
	return 1
}

# --- main ------------------------------------------------------------------------------

if [[ -z $DRY_RUN ]]; then
	command -v redis-server >/dev/null || apt_install redis-server
	if ! command -v redis-cli >/dev/null || ! command -v redis-benchmark >/dev/null; then
		apt_install redis-tools
	fi
	command -v nutcracker >/dev/null || apt_install nutcracker
fi

free_port REDIS_PORT
free_port PROXY_PORT
free_port TWEM_PORT
free_port REDCON_PORT
free_port GOFLOOR_PORT
free_port EPOLL_PORT

start redis ${PIN_REDIS[@]+"${PIN_REDIS[@]}"} redis-server --save "" --appendonly no --dir "$WORKDIR" --bind 127.0.0.1 \
	--port "$REDIS_PORT" --daemonize no
wait_ready redis "$REDIS_PORT" "$LAST_PID"
REDIS_PID=$LAST_PID
start_twemproxy twemproxy "$TWEM_PORT"
TWEM_PID=$LAST_PID
start_proxy
start_floor redconfloor "$REDCON_PORT"
REDCON_PID=$LAST_PID
start_floor gofloor "$GOFLOOR_PORT"
GOFLOOR_PID=$LAST_PID
start_floor epollfloor "$EPOLL_PORT"
EPOLL_PID=$LAST_PID

if [[ -n $DRY_RUN ]]; then
	# Round 1's runs, each target's, in order: the rounds after it repeat them.
	for step in "${STEPS[@]}"; do
		read -r workload pipeline <<<"$step"
		if [[ $workload == populate ]]; then
			echo "+ populate $pipeline: redis-cli -p $REDIS_PORT --pipe (SET sess:<n> for $BENCH_KEYS keys)"
			continue
		fi
		for target in "${TARGETS[@]}"; do
			command_for "$workload" "$target"
			for i in "${!CMD[@]}"; do # payloads shortened to 40 bytes
				((${#CMD[i]} <= 40)) || CMD[i]="${CMD[i]:0:40}…"
			done
			echo "+ $target: timeout $BENCH_TIMEOUT ${PIN_CLIENT[*]+${PIN_CLIENT[*]} }redis-benchmark -h 127.0.0.1 -p $(port_for "$target") -c $BENCH_CLIENTS -n $BENCH_N -r $BENCH_KEYS -P $pipeline --csv -q ${CMD[*]}"
		done
	done
	exit 0
fi

pins=
[[ -n ${BENCH_CPUS_REDIS:-}${BENCH_CPUS_PROXY:-}${BENCH_CPUS_CLIENT:-} ]] &&
	pins=", CPUs: redis ${BENCH_CPUS_REDIS:-any}, proxies ${BENCH_CPUS_PROXY:-any}, redis-benchmark ${BENCH_CPUS_CLIENT:-any}"
echo "machine:    $(nproc) CPUs, Linux $(uname -r)$pins"
[[ -z ${BENCH_GOMAXPROCS:-} ]] || echo "go:         GOMAXPROCS=$BENCH_GOMAXPROCS for sessproxy and the Go floors"
echo "redis:      $(redis-server --version)"
echo "twemproxy:  $(nutcracker --version 2>&1 | head -n 1)"
echo "proxy:      $PROXY_DESC"
echo "floors:     redconfloor: redcon, every command forwarded on one shared upstream connection, no policy"
echo "            gofloor: a Go relay that only copies bytes, one upstream connection per client"
echo "            epollfloor: one thread, one epoll loop (twemproxy's design in Go), one shared upstream connection"
echo "benchmark:  redis-benchmark -c $BENCH_CLIENTS -n $BENCH_N -r $BENCH_KEYS, median of $BENCH_ROUNDS interleaved round(s)"
echo "            SESS.* rows: every target but sessproxy runs SET sess:<id> <json> EX 86400 / GET sess:<id>"
echo

# lines: "workload pipeline target round rps p99 redis_us proxy_us" or "... error"
RESULTS=$WORKDIR/results
for ((round = 1; round <= BENCH_ROUNDS; round++)); do
	for step in "${STEPS[@]}"; do
		read -r workload pipeline <<<"$step"
		if [[ $workload == populate ]]; then
			populate "$pipeline"
			continue
		fi
		for target in "${TARGETS[@]}"; do
			command_for "$workload" "$target"
			what="round $round/$BENCH_ROUNDS  $(label_for "$workload") -P $pipeline  $target"
			[[ $workload == *set* ]] && empty_keys
			if [[ $workload == *get* ]] && ! check_hit "$workload" "$target"; then
				figures=
			else
				figures=$(bench "$target" "$pipeline" "${CMD[@]}") || figures=
			fi
			if [[ -n $figures && $workload == *set* ]] && ! check_written "$workload"; then
				figures=
			fi
			if [[ -n $figures ]]; then
				log "$what: $figures"
				echo "$workload $pipeline $target $round $figures" >>"$RESULTS"
			else
				log "$what: error: $(grep -v 'Could not fetch server CONFIG' "$WORKDIR/bench.err" | tail -n 2 | tr '\n' ' ')"
				echo "$workload $pipeline $target $round error" >>"$RESULTS"
			fi
		done
	done
done
log ""

# MEDIAN_AWK: add(x) collects a value, median() is the median of those collected.
# Insertion sort: a handful of rounds, and mawk has no asort.
MEDIAN_AWK='
	function add(x,  i) {
		for (i = ++n; i > 1 && v[i - 1] > x; i--) v[i] = v[i - 1]
		v[i] = x
	}
	function median() { return (n % 2) ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2 }
'

# figure WORKLOAD PIPELINE TARGET COLUMN: the median over rounds of column 5 (rps), 6
# (p99), 7 (Redis CPU µs per request) or 8 (the middle process's), or "error" if any
# round of that cell failed.
figure() {
	awk -v w="$1" -v p="$2" -v t="$3" -v c="$4" "$MEDIAN_AWK"'
		$1 == w && $2 == p && $3 == t {
			if ($5 == "error") bad = 1
			add($c + 0)
		}
		END { if (bad || n == 0) print "error"; else print median() }' "$RESULTS"
}

# ratio WORKLOAD PIPELINE TARGET COLUMN: the median over rounds of the round's TARGET
# figure divided by the same round's direct figure, or "error".
ratio() {
	awk -v w="$1" -v p="$2" -v t="$3" -v c="$4" "$MEDIAN_AWK"'
		$1 == w && $2 == p && ($3 == t || $3 == "direct") {
			if ($5 == "error") bad = 1
			else if ($3 == t) x[$4] = $c
			else d[$4] = $c
		}
		END {
			for (r in x) {
				if (!(r in d) || d[r] == 0) bad = 1
				else add(x[r] / d[r])
			}
			if (bad || n == 0) print "error"; else printf "%.2f\n", median()
		}' "$RESULTS"
}
rps() { awk -v a="$1" 'BEGIN { if (a == "error") print a; else printf "%.0f", a }'; }

# table HEADER... then ROW lines: fixed-width columns, the first one wide.
row() {
	printf '%-20s' "$1"
	shift
	printf ' | %12s' "$@"
	printf '\n'
}

echo "throughput (requests per second, median of the rounds; ratios to direct Redis, median of the rounds' own)"
row workload "direct rps" "proxy rps" proxy/direct twemproxy/dir redconfl/dir gofloor/dir epollfl/dir
missing=()
for step in "${STEPS[@]}"; do
	read -r workload pipeline <<<"$step"
	[[ $workload == populate ]] && continue
	d=$(figure "$workload" "$pipeline" direct 5)
	p=$(figure "$workload" "$pipeline" proxy 5)
	row "$(label_for "$workload") -P $pipeline" "$(rps "$d")" "$(rps "$p")" \
		"$(ratio "$workload" "$pipeline" proxy 5)" "$(ratio "$workload" "$pipeline" twemproxy 5)" \
		"$(ratio "$workload" "$pipeline" redconfloor 5)" "$(ratio "$workload" "$pipeline" gofloor 5)" \
		"$(ratio "$workload" "$pipeline" epollfloor 5)"
	for target in "${TARGETS[@]}"; do
		if [[ $(figure "$workload" "$pipeline" "$target" 5) == error ]]; then
			missing+=("$target: $(label_for "$workload") -P $pipeline")
		fi
	done
done

echo
echo "p99 latency (ms, redis-benchmark's; medians as above)"
row workload direct proxy proxy/direct twemproxy redconfloor gofloor epollfloor
for step in "${STEPS[@]}"; do
	read -r workload pipeline <<<"$step"
	[[ $workload == populate ]] && continue
	d=$(figure "$workload" "$pipeline" direct 6)
	p=$(figure "$workload" "$pipeline" proxy 6)
	row "$(label_for "$workload") -P $pipeline" "$d" "$p" "$(ratio "$workload" "$pipeline" proxy 6)" \
		"$(figure "$workload" "$pipeline" twemproxy 6)" "$(figure "$workload" "$pipeline" redconfloor 6)" \
		"$(figure "$workload" "$pipeline" gofloor 6)" "$(figure "$workload" "$pipeline" epollfloor 6)"
done

# Where the time goes: CPU each process spent per request, read from /proc before and
# after every run (median over rounds). Redis's columns show what each target's
# commands cost it (the proxy's are Lua scripts for writes); the others what the
# process between redis-benchmark and Redis costs itself.
echo
echo "CPU per request (µs): Redis's, with each target in front; then the target's own"
row workload "redis direct" "redis proxy" "redis twemp" "redis redconf" "redis gofloor" \
	"redis epollfl" "proxy" "twemproxy" "redconfloor" "gofloor" "epollfloor"
for step in "${STEPS[@]}"; do
	read -r workload pipeline <<<"$step"
	[[ $workload == populate ]] && continue
	cells=()
	for target in "${TARGETS[@]}"; do
		cells+=("$(figure "$workload" "$pipeline" "$target" 7)")
	done
	for target in "${TARGETS[@]:1}"; do
		cells+=("$(figure "$workload" "$pipeline" "$target" 8)")
	done
	row "$(label_for "$workload") -P $pipeline" "${cells[@]}"
done

if ((${#missing[@]})); then
	log ""
	log "bench: FAILED — no figure for:"
	printf '  %s\n' "${missing[@]}" >&2
	exit 1
fi
