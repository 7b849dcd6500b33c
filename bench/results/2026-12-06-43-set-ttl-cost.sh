#!/bin/bash
# Redis's own CPU per request for a plain SET (what make bench sends to Redis direct and
# through twemproxy and the floors), SET … EX and SET … PX … GET (the native write the proxy
# sends), redis-benchmark straight at one redis-server, keys already present (so GET returns
# the old value), 71 B at -P 16, 3 rounds. 37-set-get-cost.sh with a plain SET added.
set -e
port=17111
redis-server --port $port --save '' --appendonly no --daemonize yes --logfile /dev/null
trap 'redis-cli -p $port shutdown nosave >/dev/null 2>&1 || true' EXIT
for i in $(seq 50); do redis-cli -p $port ping >/dev/null 2>&1 && break; sleep 0.1; done
for size in 71; do
 V=$(head -c $size < <(yes 'Qm9vdHN0cmFwLXRva2VuLTlmM2Ew_-' | tr -d '\n'))
 redis-benchmark -p $port -c 50 -n 200000 -r 100000 -q -P 16 SET sess:__rand_int__ "$V" EX 86400 >/dev/null
 for r in 1 2 3; do for P in 16; do
  for form in "" "EX 86400" "PX 86400000 GET"; do
   rp=$(pgrep -f "redis-server.*:$port")
   c0=$(awk '{print $14+$15}' /proc/$rp/stat)
   out=$(redis-benchmark -p $port -c 50 -n 200000 -r 100000 -q -P $P SET sess:__rand_int__ "$V" $form 2>&1 | tr '\r' '\n' | grep 'requests per second' | tail -1)
   c1=$(awk '{print $14+$15}' /proc/$rp/stat)
   rps=$(echo "$out" | grep -o '[0-9.]* requests per second' | cut -d' ' -f1)
   echo "round $r ${size}B -P $P SET … $form: rps=$rps redis_cpu_us=$(awk -v a=$c0 -v b=$c1 'BEGIN{printf "%.2f", (b-a)*10000/200000}')"
  done
 done; done
done
