#!/usr/bin/env bash
# Load figures for BENCHMARKS.md: the release binary on loopback, its database pre-filled with N
# connections (examples/prefill.rs writes them through the store, sealed like the server does),
# next to a plain actix-web reference server (examples/ceiling.rs) measured in the same run with
# the same client settings. Needs wrk and curl (apt-get install wrk curl).
#
# Usage: scripts/load.sh [connections] [seconds]      (defaults: 100000 10)
# APPLIANCE=path/to/binary runs another build of the appliance through the same harness;
# ROUNDS=n sets how many token/ceiling pairs run (default 3).
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-100000}
secs=${2:-10}
wrk_opts=(-t2 -c32 -d"${secs}s" --latency)
cargo build --release --quiet --bin connect-appliance --example prefill --example ceiling
bin=${APPLIANCE:-target/release/connect-appliance}
examples=target/release/examples
dir=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$dir"
}
trap cleanup EXIT
key=load-test-admin-key-0123456789
auth=(-H "Authorization: Bearer $key")

rss_kib() { awk '/VmRSS/{print $2}' "/proc/$1/status"; }
mib() { awk -v k="$1" 'BEGIN { printf "%.1f MiB", k / 1024 }'; }
# Waits for "listening on URL" in the file $1 and prints the URL.
listening() {
  for _ in $(seq 6000); do
    if grep -q "^listening on " "$1" 2>/dev/null; then sed -n 's/^listening on //p' "$1"; return; fi
    sleep 0.01
  done
  echo "no 'listening on' in $1:" >&2; cat "$1" "${1%.out}.err" >&2 2>/dev/null || true; exit 1
}
# wrk's output reduced to "req/s p50 p99" (latencies in microseconds).
figures() {
  awk '/Requests\/sec/ { rps = $2 }
       function us(v) { if (v ~ /ms$/) return v * 1000; if (v ~ /us$/) return v + 0; if (v ~ /s$/) return v * 1000000; return v }
       $1 == "50%" { p50 = us($2) } $1 == "99%" { p99 = us($2) }
       END { printf "%s %.0f %.0f\n", rps, p50, p99 }'
}
show() { awk '{ printf "  %s requests/s, p50 %.2f ms, p99 %.2f ms\n", $1, $2 / 1000, $3 / 1000 }' <<< "$1"; }

echo "machine: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg) before the run"
"$examples/ceiling" > "$dir/upstream.out" 2> "$dir/upstream.err" &
pids+=($!)
upstream=$(listening "$dir/upstream.out")
cat > "$dir/config.toml" <<TOML
[server]
listen = "127.0.0.1:0"
[storage]
path = "data/connect.redb"
[vault]
identity_file = "data/vault-identity.txt"
[admin]
api_keys = ["$key"]
[limits]
public_requests_per_minute = 1000000
[sandbox]
enabled = true
[plugins.sandbox]
provider = "sandbox"
client_id = "sandbox-client"
client_secret = "sandbox-secret"
[plugins.upstream]
auth = "api_key"
api_base_url = "$upstream/api"
api_key_header = "X-Api-Key"
api_key_prefix = ""
TOML

echo "== pre-filling $n connections"
"$examples/prefill" --config "$dir/config.toml" --connections "$n" --ids-out "$dir/ids.txt"
db="$dir/data/connect.redb"
filled=$(stat -c %s "$db")
echo "  database: $filled bytes ($(awk -v b="$filled" -v n="$n" 'BEGIN { if (n > 0) printf "%.0f bytes per connection, events and indexes included", b / n; else print "empty" }'))"

t0=$(date +%s%N)
"$bin" --config "$dir/config.toml" > "$dir/app.out" 2> "$dir/app.err" &
app=$!
pids+=($app)
base=$(listening "$dir/app.out")
startup_ms=$(( ($(date +%s%N) - t0) / 1000000 ))
echo "== start-up with $n connections: ${startup_ms} ms to 'listening on'; RSS $(mib "$(rss_kib $app)")"

import() {
  curl -sf -X POST "$base/v1/connections" "${auth[@]}" -H 'Content-Type: application/json' \
    -d "{\"tenant_id\":\"$1\",\"plugin\":\"$2\",\"credentials\":{\"access_token\":\"token-$1\",\"expires_in\":86400}}" \
    | sed -n 's/.*"id":"\([^"]*\)".*/\1/p'
}
[ -s "$dir/ids.txt" ] || import tenant-0 sandbox > "$dir/ids.txt"
size=$(curl -sf "${auth[@]}" "$base/v1/connections/$(head -1 "$dir/ids.txt")/token" | wc -c)
"$examples/ceiling" --body-bytes "$size" > "$dir/ceiling.out" 2> "$dir/ceiling.err" &
pids+=($!)
ceiling=$(listening "$dir/ceiling.out")
cat > "$dir/token.lua" <<LUA
local ids = {}
for line in io.lines("$dir/ids.txt") do ids[#ids + 1] = line end
request = function()
  return wrk.format("GET", "/v1/connections/" .. ids[math.random(#ids)] .. "/token")
end
LUA
# The machine may be shared: token fetch and ceiling alternate, and each round's ratio counts.
rounds=${ROUNDS:-3}
echo "== GET /v1/connections/{id}/token (no refresh), $(wc -l < "$dir/ids.txt") ids at random, ${size}-byte body," \
  "wrk ${wrk_opts[*]}, against the ceiling (plain actix-web, same path shape, same body size, same" \
  "client settings), alternating, $rounds rounds"
ratios=()
for round in $(seq "$rounds"); do
  token=$(wrk "${wrk_opts[@]}" -s "$dir/token.lua" "${auth[@]}" "$base" | figures)
  top=$(wrk "${wrk_opts[@]}" -s "$dir/token.lua" "${auth[@]}" "$ceiling" | figures)
  ratio=$(awk -v a="${token%% *}" -v b="${top%% *}" 'BEGIN { printf "%.0f", 100 * a / b }')
  ratios+=("$ratio")
  echo "  round $round: token fetch$(show "$token" | sed 's/^ *//;s/^/ /')"
  echo "           ceiling$(show "$top" | sed 's/^ *//;s/^/ /')"
  echo "           token fetch = ${ratio}% of the ceiling"
done
echo "  median: $(printf '%s\n' "${ratios[@]}" | sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }')% of the ceiling"
echo "  RSS after the token runs: $(mib "$(rss_kib $app)")"

cat > "$dir/links.lua" <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"tenant_id":"tenant-load","plugin":"sandbox"}'
LUA
echo "== POST /v1/links (durable, group commit), wrk ${wrk_opts[*]}"
show "$(wrk "${wrk_opts[@]}" -s "$dir/links.lua" "${auth[@]}" "$base/v1/links" | figures)"

proxied=$(import proxy-tenant upstream)
echo "== proxy overhead: GET /api/small direct vs through /v1/connections/{id}/proxy, wrk -t1 -c1 -d${secs}s"
direct=$(wrk -t1 -c1 -d"${secs}s" --latency "$upstream/api/small" | figures)
via=$(wrk -t1 -c1 -d"${secs}s" --latency "${auth[@]}" "$base/v1/connections/$proxied/proxy/small" | figures)
echo "  direct:"; show "$direct"
echo "  proxied:"; show "$via"
awk -v a="$(cut -d' ' -f2 <<< "$via")" -v b="$(cut -d' ' -f2 <<< "$direct")" \
  'BEGIN { printf "  added latency at p50: %.2f ms\n", (a - b) / 1000 }'

echo "== 1 GiB streamed through the proxy"
curl -sf -o /dev/null -w '  %{size_download} bytes in %{time_total} s\n' "${auth[@]}" \
  "$base/v1/connections/$proxied/proxy/bytes/1073741824" > "$dir/curl.out" &
fetch=$!
low=$(rss_kib $app); high=$low
while kill -0 $fetch 2>/dev/null; do
  r=$(rss_kib $app)
  (( r < low )) && low=$r
  (( r > high )) && high=$r
  sleep 0.1
done
wait $fetch
cat "$dir/curl.out"
echo "  appliance RSS during the transfer (sampled every 0.1 s): $(mib "$low") .. $(mib "$high")"

echo "== at the end: RSS $(mib "$(rss_kib $app)"); database $(stat -c %s "$db") bytes (with the links created above)"
echo "machine load average after the run: $(cut -d' ' -f1-3 /proc/loadavg)"
