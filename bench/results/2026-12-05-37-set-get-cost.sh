#!/bin/bash
# Redis's own CPU per request for SET … EX against SET … PX … GET (the native
# write the proxy sends), redis-benchmark straight at one redis-server, keys
# already present (so GET returns the old value), -P 1 and -P 16, 3 rounds.
# SIZES, PIPES and FORMS (what follows SET key value, comma-separated; an
# empty one is a plain SET) change what is run: run 43 (2026-12-06) was
#   SIZES=71 PIPES=16 FORMS=',EX 86400,PX 86400000 GET' bash …-37-set-get-cost.sh
set -e
IFS=, read -ra forms <<<"${FORMS-EX 86400,PX 86400000 GET}"
port=17101
redis-server --port $port --save '' --appendonly no --daemonize yes --logfile /dev/null
trap 'redis-cli -p $port shutdown nosave >/dev/null 2>&1 || true' EXIT
for i in $(seq 50); do redis-cli -p $port ping >/dev/null 2>&1 && break; sleep 0.1; done
for size in ${SIZES:-71 1024}; do
 V=$(head -c $size < <(yes 'Qm9vdHN0cmFwLXRva2VuLTlmM2Ew_-' | tr -d '\n'))
 redis-benchmark -p $port -c 50 -n 200000 -r 100000 -q -P 16 SET sess:__rand_int__ "$V" EX 86400 >/dev/null
 for r in 1 2 3; do for P in ${PIPES:-1 16}; do
  for form in "${forms[@]}"; do
   rp=$(pgrep -f "redis-server.*:$port")
   c0=$(awk '{print $14+$15}' /proc/$rp/stat)
   out=$(redis-benchmark -p $port -c 50 -n 200000 -r 100000 -q -P $P SET sess:__rand_int__ "$V" $form 2>&1 | tr '\r' '\n' | grep 'requests per second' | tail -1)
   c1=$(awk '{print $14+$15}' /proc/$rp/stat)
   rps=$(echo "$out" | grep -o '[0-9.]* requests per second' | cut -d' ' -f1)
   echo "round $r ${size}B -P $P SET … $form: rps=$rps redis_cpu_us=$(awk -v a=$c0 -v b=$c1 'BEGIN{printf "%.2f", (b-a)*10000/200000}')"
  done
 done; done
done
