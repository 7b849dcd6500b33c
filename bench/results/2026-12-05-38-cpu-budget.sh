#!/bin/bash
# Where two cores go under SET -P 16 (71 B, 50 clients): redis-benchmark's own
# CPU per request, beside Redis's and the proxy's, straight at Redis and
# through sessproxy (built from the working tree), 3 rounds.
set -e
cd "$(dirname "$0")/../.."
go build -o /tmp/sp-budget ./cmd/sessproxy
V='{"cookie":{"originalMaxAge":86400000,"httpOnly":true,"path":"/"},"n":1}'
redis-server --port 17201 --save '' --appendonly no --daemonize yes --logfile /dev/null
printf '[tombstone]\ntransition = "1ms"\n[metrics]\naddr = ""\n' > /tmp/sp-budget.toml
/tmp/sp-budget -config /tmp/sp-budget.toml -listen 127.0.0.1:17202 -upstream 127.0.0.1:17201 -mode standalone >/dev/null 2>&1 &
sp=$!
trap 'kill $sp; redis-cli -p 17201 shutdown nosave >/dev/null 2>&1 || true' EXIT
for i in $(seq 50); do redis-cli -p 17202 ping >/dev/null 2>&1 && break; sleep 0.1; done
rp=$(pgrep -f "redis-server.*:17201")
ticks() { awk '{print $14+$15}' /proc/$1/stat; }
n=300000
for r in 1 2 3; do for target in direct:17201 proxy:17202; do
 port=${target#*:}
 r0=$(ticks $rp); p0=$(ticks $sp)
 out=$( { /usr/bin/time -f 'bench_cpu_s=%U+%S' redis-benchmark -p $port -c 50 -n $n -r 100000 -q -P 16 SET sess:__rand_int__ "$V" EX 86400 | tr '\r' '\n' | grep 'requests per second' | tail -1; } 2>&1 )
 r1=$(ticks $rp); p1=$(ticks $sp)
 rps=$(echo "$out" | grep -o '[0-9.]* requests per second' | cut -d' ' -f1)
 bcpu=$(echo "$out" | grep -o 'bench_cpu_s=[0-9.+]*' | cut -d= -f2 | bc)
 echo "round $r ${target%%:*}: rps=$rps bench_us=$(awk -v c=$bcpu -v n=$n 'BEGIN{printf "%.2f", c*1e6/n}') redis_us=$(awk -v a=$r0 -v b=$r1 -v n=$n 'BEGIN{printf "%.2f", (b-a)*1e4/n}') proxy_us=$(awk -v a=$p0 -v b=$p1 -v n=$n 'BEGIN{printf "%.2f", (b-a)*1e4/n}')"
done; done
