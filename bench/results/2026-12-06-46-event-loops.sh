#!/bin/bash
# 46-event-loops.sh ROUNDS N: sessproxy with a goroutine per client (server.event_loops = 0,
# "proxy") against sessproxy with one and two event loops ("loops1", "loops2") and
# twemproxy, all in front of one redis-server, with direct Redis as the reference: make
# bench's eight rows (redis-benchmark -c 50 -r 100000, the 71 B and 1 KB express-session
# JSON; SESS.* rows are SET … EX / GET for direct Redis and twemproxy), targets
# interleaved within each round. Prints requests/s and the CPU per request of the target
# and of Redis (from /proc). GET rows read keys written straight into Redis first (every
# key hits); write rows start from an empty Redis. Needs SP (a sessproxy binary).
set -u
rounds=$1 n=$2
dir=$(mktemp -d)
small='{"cookie":{"originalMaxAge":86400000,"httpOnly":true,"path":"/"},"n":1}'
big=$(cd "$(dirname "$0")/../.." && bash -c 'die() { echo "$*" >&2; exit 1; }; source <(sed -n "/^session_json() {/,/^}/p" bench/bench.sh); session_json 1024')
redis-server --port 17001 --save '' --appendonly no --daemonize yes --logfile $dir/redis.log
for l in 0 1 2; do printf '[server]\nevent_loops = %d\n[tombstone]\ntransition = "1ms"\n[metrics]\naddr=""\n' $l >$dir/sp$l.toml; done
printf 'b:\n  listen: 127.0.0.1:17002\n  redis: true\n  hash: fnv1a_64\n  distribution: ketama\n  auto_eject_hosts: false\n  timeout: 5000\n  servers:\n   - 127.0.0.1:17001:1\n' >$dir/tw.yml
for i in $(seq 50); do redis-cli -p 17001 ping >/dev/null 2>&1 && break; sleep 0.1; done
rp=$(pgrep -f "redis-server.*:17001")
populate() { # VALUE [EX]
	LC_ALL=C awk -v v="$1" -v ex="${2:-}" 'BEGIN { for (i = 0; i < 100000; i++) { k = sprintf("sess:%012d", i)
		if (ex != "") printf "*5\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n$2\r\nEX\r\n$%d\r\n%s\r\n", length(k), k, length(v), v, length(ex), ex
		else printf "*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n", length(k), k, length(v), v } }' | redis-cli -p 17001 --pipe >/dev/null
}
ticks() { [[ -n $1 ]] && awk '{print $14+$15}' /proc/$1/stat || echo 0; }
for r in $(seq $rounds); do
	for row in "SET 1" "SET 16" "GET 1" "GET 16" "SESS.SET 1" "SESS.SET 16" "SESS.GET 1" "SESS.GET 16"; do
		read -r cmd P <<<"$row"
		case $cmd in GET) populate "$small" ;; SESS.GET) populate "$big" 86400 ;; esac
		for t in direct proxy loops1 loops2 twemproxy; do
			port=17002 pp=
			case $t in
			direct) port=17001 ;;
			proxy | loops1 | loops2) l=0; [[ $t == loops* ]] && l=${t#loops}
				$SP -config $dir/sp$l.toml -listen 127.0.0.1:17002 -upstream 127.0.0.1:17001 -mode standalone >$dir/sp.log 2>&1 & pp=$! ;;
			twemproxy) /usr/sbin/nutcracker -c $dir/tw.yml -s 22299 -a 127.0.0.1 >$dir/tw.log 2>&1 & pp=$! ;;
			esac
			for i in $(seq 50); do redis-cli -p $port ping >/dev/null 2>&1 && break; sleep 0.1; done
			native=1; [[ $t == proxy || $t == loops* ]] && native=
			case $cmd in
			SET) args=(SET sess:__rand_int__ "$small") ;;
			GET) args=(GET sess:__rand_int__) ;;
			SESS.SET) if [[ -n $native ]]; then args=(SET sess:__rand_int__ "$big" EX 86400); else args=(SESS.SET __rand_int__ "$big"); fi ;;
			SESS.GET) if [[ -n $native ]]; then args=(GET sess:__rand_int__); else args=(SESS.GET __rand_int__); fi ;;
			esac
			# Write rows start from an empty Redis, as make bench's do: an overwrite
			# costs Redis more, and the proxy's SET … GET gets the old value back.
			[[ $cmd == SET || $cmd == SESS.SET ]] && redis-cli -p 17001 flushall >/dev/null
			t0=$(ticks "$pp") r0=$(ticks $rp)
			out=$(redis-benchmark -p $port -c 50 -n $n -r 100000 -P $P -q "${args[@]}" 2>/dev/null | tr '\r' '\n' | grep -o '[0-9.]* requests per second' | tail -1)
			t1=$(ticks "$pp") r1=$(ticks $rp)
			[[ -n $pp ]] && { kill $pp; wait $pp 2>/dev/null; }
			awk -v r=$r -v row="$cmd -P $P" -v t=$t -v o="${out%% *}" -v a=$t0 -v b=$t1 -v c=$r0 -v d=$r1 -v n=$n -v hz=$(getconf CLK_TCK) \
				'BEGIN { printf "round %d  %-12s %-10s rps=%-10s cpu_us=%-6.1f redis_us=%.1f\n", r, row, t, o, (b-a)*1e6/hz/n, (d-c)*1e6/hz/n }'
		done
	done
done
redis-cli -p 17001 shutdown nosave >/dev/null
rm -rf $dir
