#!/bin/bash
# 42-syscalls.sh ROUNDS: system calls, context switches and CPU per request of each target
# (sessproxy, twemproxy, redconfloor, epollfloor) and of Redis behind it, counted by perf's tracepoints
# over a 3 s window in the middle of a redis-benchmark -c 50 SET sess:<id> <71-byte JSON>
# run, at -P 1 and -P 16 (perf stat -p counts, it does not sample: the targets run at full
# speed). Requests in the window: Redis's cmdstat_set calls before and after it.
# Needs SP (a sessproxy binary), RF (bench/redconfloor built) and EF (bench/epollfloor
# built) in the environment.
set -u
rounds=$1
dir=$(mktemp -d)
V='{"cookie":{"originalMaxAge":86400000,"httpOnly":true,"path":"/"},"n":1}'
redis-server --port 17001 --save '' --appendonly no --daemonize yes --logfile $dir/redis.log
printf '[tombstone]\ntransition = "1ms"\n[metrics]\naddr=""\n' >$dir/sp.toml
printf 'b:\n  listen: 127.0.0.1:17002\n  redis: true\n  hash: fnv1a_64\n  distribution: ketama\n  auto_eject_hosts: false\n  timeout: 5000\n  servers:\n   - 127.0.0.1:17001:1\n' >$dir/tw.yml
events=raw_syscalls:sys_enter,syscalls:sys_enter_read,syscalls:sys_enter_write,syscalls:sys_enter_writev,syscalls:sys_enter_epoll_wait,syscalls:sys_enter_epoll_pwait,syscalls:sys_enter_futex,syscalls:sys_enter_nanosleep,syscalls:sys_enter_epoll_ctl,context-switches,task-clock
for i in $(seq 50); do redis-cli -p 17001 ping >/dev/null 2>&1 && break; sleep 0.1; done
rp=$(pgrep -f "redis-server.*:17001")
calls() { redis-cli -p 17001 info commandstats | tr -d '\r' | sed -n 's/^cmdstat_set:calls=\([0-9]*\),.*/\1/p'; }
for r in $(seq $rounds); do
	for P in 1 16; do
		for t in proxy twemproxy redconfloor epollfloor; do
			case $t in
			proxy) $SP -config $dir/sp.toml -listen 127.0.0.1:17002 -upstream 127.0.0.1:17001 -mode standalone >$dir/sp.log 2>&1 & ;;
			twemproxy) /usr/sbin/nutcracker -c $dir/tw.yml -s 22299 -a 127.0.0.1 >$dir/tw.log 2>&1 & ;;
			redconfloor) $RF 127.0.0.1:17002 127.0.0.1:17001 >$dir/rf.log 2>&1 & ;;
			epollfloor) $EF 127.0.0.1:17002 127.0.0.1:17001 >$dir/ef.log 2>&1 & ;;
			esac
			pp=$!
			for i in $(seq 50); do redis-cli -p 17002 ping >/dev/null 2>&1 && break; sleep 0.1; done
			redis-benchmark -p 17002 -c 50 -n 100000000 -r 100000 -P $P -q SET sess:__rand_int__ "$V" >/dev/null 2>&1 &
			bp=$!
			sleep 1
			c0=$(calls)
			perf stat -x, --per-thread -e $events -p $pp,$rp -o $dir/t.csv -- sleep 3
			c1=$(calls)
			kill $bp; wait $bp 2>/dev/null
			kill $pp; wait $pp 2>/dev/null
			# --per-thread: one line per thread and event (comm-tid,count,,event,...); Redis's
			# threads are redis-server, bio_* and jemalloc_bg_thd, the rest are the target's.
			awk -F, -v n=$((c1 - c0)) -v t=$t -v P=$P -v r=$r '
				$2 ~ /^[0-9.]+$/ && $4 ~ /sys_enter|context|task-clock/ {
					who = ($1 ~ /^(redis-server|bio_|jemalloc)/) ? "redis(" t ")" : t
					name = $4; sub(/.*sys_enter_?/, "", name); if (name == "") name = "all"
					v[who, name] += $2 / n; seen[who] = 1
				}
				END { for (w in seen) printf "round %d P%-2s %-22s rps=%-7d syscalls=%.3f read=%.3f write=%.3f writev=%.3f epoll=%.3f futex=%.3f nanosleep=%.3f epoll_ctl=%.3f cs=%.3f cpu_us=%.2f\n", r, P, w, n / 3, v[w, "all"], v[w, "read"], v[w, "write"], v[w, "writev"], v[w, "epoll_wait"]+v[w, "epoll_pwait"], v[w, "futex"], v[w, "nanosleep"], v[w, "epoll_ctl"], v[w, "context-switches"], v[w, "task-clock"]*1000 }' $dir/t.csv | sort -k4
		done
	done
done
redis-cli -p 17001 shutdown nosave >/dev/null
rm -rf $dir
