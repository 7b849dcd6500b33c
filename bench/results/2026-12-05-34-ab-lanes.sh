#!/bin/bash
# ab.sh ROUNDS N -- "label:ENV=..:bin" ... ; alternates configs on SET P1, SET P16, SESS.SET P1/P16 (ROWS picks; VFILE: the value, small.json by default)
rounds=$1; n=$2; shift 2
cd /tmp/prof
redis-server --port 17001 --save '' --appendonly no --daemonize yes --logfile /tmp/prof/redis.log
V=$(cat ${VFILE:-small.json})
printf '[tombstone]\ntransition = "1ms"\n[metrics]\naddr=""\n' > /tmp/prof/ab.toml
for r in $(seq $rounds); do
 for row in ${ROWS:-SETP1 SETP16 SSETP1 SSETP16 GETP1}; do
  case $row in
   SETP1) args=(-P 1 SET sess:__rand_int__ "$V" EX 86400);;
   SETP16) args=(-P 16 SET sess:__rand_int__ "$V" EX 86400);;
   SSETP1) args=(-P 1 SESS.SET __rand_int__ "$V"); [[ $label == direct ]] && args=(-P 1 SET sess:__rand_int__ "$V" EX 86400);;
   SSETP16) args=(-P 16 SESS.SET __rand_int__ "$V"); [[ $label == direct ]] && args=(-P 16 SET sess:__rand_int__ "$V" EX 86400);;
   GETP1) args=(-P 1 GET sess:__rand_int__);;
  esac
  for cfg in "$@"; do
   label=${cfg%%:*}; rest=${cfg#*:}; envs=${rest%%:*}; bin=${rest#*:}
   port=17002
   if [[ $label == direct ]]; then port=17001; sleep 30 & pp=$!; else
   env $envs $bin -config ${ABTOML:-ab.toml} -listen 127.0.0.1:17002 -upstream 127.0.0.1:17001 -mode standalone > /tmp/prof/ab-$label.log 2>&1 &
   pp=$!
   for i in $(seq 50); do redis-cli -p 17002 ping >/dev/null 2>&1 && break; sleep 0.1; done; fi
   rp=$(pgrep -f "redis-server.*:17001")
   t0=$(awk '{print $14+$15}' /proc/$pp/stat); r0=$(awk '{print $14+$15}' /proc/$rp/stat)
   out=$(redis-benchmark -p $port -c 50 -n $n -r 100000 -q "${args[@]}" 2>&1 | tr "\r" "\n" | grep "requests per second" | tail -1)
   t1=$(awk '{print $14+$15}' /proc/$pp/stat); r1=$(awk '{print $14+$15}' /proc/$rp/stat)
   kill $pp; wait $pp 2>/dev/null
   rps=$(echo "$out" | grep -o "[0-9.]* requests per second" | cut -d" " -f1)
   cpu=$(awk -v a=$t0 -v b=$t1 -v n=$n 'BEGIN{printf "%.1f", (b-a)*10000/n}')
   rcpu=$(awk -v a=$r0 -v b=$r1 -v n=$n 'BEGIN{printf "%.1f", (b-a)*10000/n}')
   echo "round $r $row $label rps=$rps cpu_us=$cpu redis_us=$rcpu"
  done
 done
done
redis-cli -p 17001 shutdown nosave >/dev/null
