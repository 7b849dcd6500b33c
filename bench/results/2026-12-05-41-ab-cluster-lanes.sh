#!/bin/bash
# ab-cluster-lanes.sh ROUNDS N old new: two sessproxy builds, alternated, in front
# of one 3-master Redis Cluster (no replicas) on this machine; redis-benchmark
# -c 50 SET/GET of 71 B sessions at -P 1 and -P 16. Prints requests a second and
# the CPU per request of the proxy and of the three masters together.
set -e
rounds=$1; n=$2; old=$3; new=$4
dir=$(mktemp -d); ports=(17301 17302 17303)
for p in "${ports[@]}"; do
 redis-server --port $p --cluster-enabled yes --cluster-config-file $dir/nodes-$p.conf --save '' --appendonly no --daemonize yes --logfile $dir/$p.log --dir $dir
done
trap 'for p in "${ports[@]}"; do redis-cli -p $p shutdown nosave >/dev/null 2>&1 || true; done; rm -rf $dir' EXIT
sleep 0.5
echo yes | redis-cli --cluster create 127.0.0.1:17301 127.0.0.1:17302 127.0.0.1:17303 --cluster-yes >/dev/null
for i in $(seq 100); do [[ $(redis-cli -p 17301 cluster info | grep -c cluster_state:ok) == 1 ]] && break; sleep 0.1; done
V='{"cookie":{"originalMaxAge":86400000,"httpOnly":true,"path":"/"},"n":1}'
printf '[tombstone]\ntransition = "1ms"\n[metrics]\naddr = ""\n' > $dir/p.toml
rticks() { local t=0; for p in "${ports[@]}"; do t=$((t + $(awk '{print $14+$15}' /proc/$(pgrep -f "redis-server.*:$p")/stat))); done; echo $t; }
for r in $(seq $rounds); do for row in SETP1 GETP1 SETP16; do for label in old new; do
 bin=$old; [[ $label == new ]] && bin=$new
 case $row in SETP1) a=(-P 1 SET sess:__rand_int__ "$V" EX 86400);; GETP1) a=(-P 1 GET sess:__rand_int__);; SETP16) a=(-P 16 SET sess:__rand_int__ "$V" EX 86400);; esac
 $bin -config $dir/p.toml -listen 127.0.0.1:17300 -upstream 127.0.0.1:17301,127.0.0.1:17302,127.0.0.1:17303 -mode cluster >$dir/sp-$label.log 2>&1 &
 sp=$!
 for i in $(seq 50); do redis-cli -p 17300 ping >/dev/null 2>&1 && break; sleep 0.1; done
 t0=$(awk '{print $14+$15}' /proc/$sp/stat); r0=$(rticks)
 out=$(redis-benchmark -p 17300 -c 50 -n $n -r 100000 -q "${a[@]}" 2>&1 | tr '\r' '\n' | grep 'requests per second' | tail -1)
 t1=$(awk '{print $14+$15}' /proc/$sp/stat); r1=$(rticks)
 kill $sp; wait $sp 2>/dev/null || true
 echo "round $r $row $label rps=$(echo "$out" | grep -o '[0-9.]* requests per second' | cut -d' ' -f1) proxy_us=$(awk -v a=$t0 -v b=$t1 -v n=$n 'BEGIN{printf "%.1f", (b-a)*1e4/n}') redis_us=$(awk -v a=$r0 -v b=$r1 -v n=$n 'BEGIN{printf "%.1f", (b-a)*1e4/n}')"
done; done; done
