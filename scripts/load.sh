#!/usr/bin/env bash
# Load figures for BENCHMARKS.md: token fetch and link creation against the release binary, on
# loopback only. Needs `wrk` (apt-get install wrk). Usage: scripts/load.sh [connections] [seconds]
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-2000}
secs=${2:-10}
bin=target/release/connect-appliance
[ -x "$bin" ] || cargo build --release
dir=$(mktemp -d)
trap 'kill "$pid" 2>/dev/null || true; rm -rf "$dir"' EXIT
key=load-test-admin-key-0123456789
cat > "$dir/config.toml" <<TOML
[server]
listen = "127.0.0.1:0"
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
TOML
"$bin" --config "$dir/config.toml" > "$dir/out" 2> "$dir/err" &
pid=$!
for _ in $(seq 100); do grep -q "listening on" "$dir/out" 2>/dev/null && break; sleep 0.05; done
base=$(sed -n 's/^listening on //p' "$dir/out")
echo "appliance at $base; importing $n connections..."
id=""
for i in $(seq "$n"); do
  id=$(curl -s -X POST "$base/v1/connections" -H "Authorization: Bearer $key" -H 'Content-Type: application/json' \
    -d "{\"tenant_id\":\"tenant-$i\",\"plugin\":\"sandbox\",\"credentials\":{\"access_token\":\"token-$i\",\"expires_in\":86400}}" \
    | sed -n 's/.*"id":"\([^"]*\)".*/\1/p')
done
echo "RSS after import: $(awk '/VmRSS/{print $2" "$3}' /proc/$pid/status); db: $(du -h "$dir/data/connect.redb" | cut -f1)"
echo "== GET /v1/connections/{id}/token (no refresh needed), ${secs}s, 2 threads, 32 connections"
wrk -t2 -c32 -d"${secs}s" --latency -H "Authorization: Bearer $key" "$base/v1/connections/$id/token" | grep -E "Requests/sec|50%|99%|Latency "
echo "== GET /healthz (storage check, no auth), same settings"
wrk -t2 -c32 -d"${secs}s" --latency "$base/healthz" | grep -E "Requests/sec|50%|99%|Latency "
cat > "$dir/links.lua" <<LUA
wrk.method = "POST"
wrk.headers["Authorization"] = "Bearer $key"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"tenant_id":"tenant-load","plugin":"sandbox"}'
LUA
echo "== POST /v1/links (durable commit each), ${secs}s, 2 threads, 32 connections"
wrk -t2 -c32 -d"${secs}s" --latency -s "$dir/links.lua" "$base/v1/links" | grep -E "Requests/sec|50%|99%|Latency "
echo "RSS at the end: $(awk '/VmRSS/{print $2" "$3}' /proc/$pid/status)"
