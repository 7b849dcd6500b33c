#!/bin/bash
# 48-misses.sh N: reads that miss (an empty Redis), through sessproxy with a goroutine per
# client (server.event_loops = -1) and with one event loop, before and after a miss's
# follow-up (the TYPE, or HGETALL for SESS.GET, that tells a hash session from a missing
# key) became a continuation sent with every other command's: OLD and NEW are sessproxy
# binaries (5840d50, where each miss took its round trip in turn, and the commit under
# test). redis-benchmark -c 50 -r 100000, N requests a run, GET sess:<n> and SESS.GET <n>
# at -P 1 and -P 16. Prints requests/s.
set -u
n=$1
dir=$(mktemp -d)
redis-server --port 17101 --save '' --appendonly no --daemonize yes --logfile $dir/redis.log
for i in $(seq 50); do redis-cli -p 17101 ping >/dev/null 2>&1 && break; sleep 0.1; done
for bin in OLD NEW; do
	for l in -1 1; do
		# 5840d50 took 0 for "none" and had no -1.
		ll=$l; [[ $bin == OLD && $l == -1 ]] && ll=0
		printf '[server]\nevent_loops = %s\n[metrics]\naddr=""\n' "$ll" >$dir/sp.toml
		${!bin} -config $dir/sp.toml -listen 127.0.0.1:17102 -upstream 127.0.0.1:17101 -mode standalone >$dir/sp.log 2>&1 & pp=$!
		for i in $(seq 50); do redis-cli -p 17102 ping >/dev/null 2>&1 && break; sleep 0.1; done
		for P in 1 16; do
			for c in "GET sess:__rand_int__" "SESS.GET __rand_int__"; do
				rps=$(redis-benchmark -p 17102 -c 50 -n $n -r 100000 -P $P -q $c 2>/dev/null | tr '\r' '\n' | grep -o '[0-9.]* requests per second' | tail -1)
				printf '%s event_loops=%-2s -P %-2s %-22s %s\n' $bin $l $P "${c%% *} (miss)" "$rps"
			done
		done
		kill $pp; wait $pp 2>/dev/null
	done
done
redis-cli -p 17101 shutdown nosave >/dev/null
rm -rf $dir
