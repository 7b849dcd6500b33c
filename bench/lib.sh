# lib.sh — what the quick bench scripts (ab.sh, redisperf.sh) share. Source it after
# setting workdir; append the pid of every process started to pids. A process started
# with setsid is stopped with its whole group, so the children of a `bash -c` go too.

pids=()
cleanup() {
	local pid
	for pid in ${pids[@]+"${pids[@]}"}; do
		kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
	done
	for pid in ${pids[@]+"${pids[@]}"}; do wait "$pid" 2>/dev/null || true; done
	rm -rf "$workdir"
}
trap cleanup EXIT

# wait_port PORT: until something answers PING there (10 s).
wait_port() {
	for _ in $(seq 100); do
		[[ $(redis-cli -p "$1" ping 2>/dev/null) == PONG ]] && return 0
		sleep 0.1
	done
	echo "$(basename "$0"): nothing answers on port $1" >&2
	return 1
}
