# common.sh — what bench.sh and bench/ttlcost.sh both use, defined once: the values make
# bench writes, and twemproxy's pool. Source it; it starts nothing.

# twemproxy_config LISTEN REDIS: nutcracker's configuration of one pool listening on
# LISTEN in front of the one redis-server at REDIS (host:port each).
twemproxy_config() {
	cat <<-EOF
		bench:
		  listen: $1
		  redis: true
		  hash: fnv1a_64
		  distribution: ketama
		  auto_eject_hosts: false
		  timeout: 5000
		  servers:
		   - $2:1
	EOF
}

SMALL_JSON='{"cookie":{"originalMaxAge":86400000,"httpOnly":true,"path":"/"},"n":1}'

# session_json prints an express-session object of exactly $1 bytes: cookie as
# express-session serialises it (expires one day ahead, so the proxy derives a normal
# TTL), a passport user, app fields, and a CSRF-style token sized to fill the rest.
session_json() {
	local size=$1 expires head tail fill
	expires=$(date -u -d '+1 day' +%Y-%m-%dT%H:%M:%S.000Z)
	head='{"cookie":{"originalMaxAge":86400000,"expires":"'$expires'","secure":true,"httpOnly":true,"domain":".shop.example.com","path":"/","sameSite":"lax"},'
	head+='"passport":{"user":"6f1c2a9e-3b7d-4e21-9c55-8a0d4f7b1e23"},'
	head+='"user":{"id":"6f1c2a9e-3b7d-4e21-9c55-8a0d4f7b1e23","email":"jane.doe@example.com","name":"Jane Doe","roles":["customer","beta-tester"],"locale":"en-GB","timezone":"Europe/London","plan":"pro","mfa":true,"lastLogin":"2026-11-20T08:14:51.392Z"},'
	head+='"cart":{"currency":"GBP","items":[{"sku":"BK-1042","name":"Field Notebook","qty":2,"price":1299},{"sku":"PN-0007","name":"Fountain Pen","qty":1,"price":4599},{"sku":"IN-0311","name":"Ink Cartridges (12)","qty":3,"price":599}],"coupon":"WINTER10"},'
	head+='"flash":{},"returnTo":"/account/orders?page=2&sort=desc","views":17,"csrfSecret":"'
	tail='"}'
	fill=$((size - ${#head} - ${#tail}))
	((fill > 0)) || { echo "session_json: base object is longer than $size bytes" >&2; return 1; }
	# A deterministic base64url-looking token: same bytes every run, nothing to escape.
	printf '%s%s%s' "$head" "$(head -c "$fill" < <(yes 'Qm9vdHN0cmFwLXRva2VuLTlmM2Ew_-' | tr -d '\n'))" "$tail"
}
