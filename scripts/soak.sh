#!/usr/bin/env bash
# Soak: minutes of mixed load against the release binary with the refresh scheduler running,
# sampling the server's resident memory into a CSV. Loopback only; every loop stops by itself.
#   bash scripts/soak.sh [minutes, default 3] [csv, default target/soak-rss.csv] [mixed|reads]
# Load: credential imports (oldest deleted past 200 live), sandbox connect flows (oldest deleted
# past 50), token fetches, forced refreshes and proxy calls. With `reads`, the writes stop after
# 30 s and only token fetches and proxy calls go on (the scheduler still refreshes), which tells
# memory held by growing data from memory held by request handling. Sandbox tokens live 30 s and the
# scheduler looks every 5 s for tokens with 20 s or less left, so background refreshes run
# throughout.
set -euo pipefail
cd "$(dirname "$0")/.."
minutes=${1:-3}
csv=${2:-target/soak-rss.csv}
mix=${3:-mixed}
bin=target/release/connect-appliance
[ -x "$bin" ] || cargo build --release
dir=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  [ -n "${server:-}" ] && kill "$server" 2>/dev/null || true
  rm -rf "$dir"
}
trap cleanup EXIT
key=soak-test-admin-key-0123456789
cat > "$dir/config.toml" <<TOML
[server]
listen = "127.0.0.1:0"
[admin]
api_keys = ["$key"]
[limits]
public_requests_per_minute = 1000000
[sandbox]
enabled = true
token_ttl_seconds = 30
[refresh]
interval_seconds = 5
lead_seconds = 20
[plugins.sandbox]
provider = "sandbox"
client_id = "sandbox-client"
client_secret = "sandbox-secret"
scopes = ["profile", "offline_access"]
TOML
# Debug level for the server module only: its log line counts each background refresh pass.
CONNECT_APPLIANCE_LOG=info,connect_appliance::server=debug \
  "$bin" --config "$dir/config.toml" >"$dir/out" 2>"$dir/err" &
server=$!
for _ in $(seq 200); do grep -q "listening on" "$dir/out" 2>/dev/null && break; sleep 0.05; done
base=$(sed -n 's/^listening on //p' "$dir/out")
[ -n "$base" ] || { cat "$dir/err" >&2; exit 1; }
auth="Authorization: Bearer $key"
end=$((SECONDS + minutes * 60))
writes_until=$end
[ "$mix" = reads ] && writes_until=$((SECONDS + 30))
echo "appliance at $base (pid $server); soaking for $minutes min ($mix)"

field() { sed -n "s/.*\"$1\":\"\\([^\"]*\\)\".*/\\1/p"; }
# Prints the status code of a request and records it for the summary.
hit() {
  local route=$1
  shift
  local code
  code=$(curl -s -o /dev/null -w '%{http_code}' "$@" || echo 000)
  echo "$route $code" >>"$dir/codes.$BASHPID"
}

importer() {
  local n=0 id
  while [ $SECONDS -lt $end ]; do
    if [ $SECONDS -ge $writes_until ]; then
      hit token "$base/v1/connections/$(shuf -n1 "$dir/imports.$1")/token" -H "$auth"
      continue
    fi
    n=$((n + 1))
    id=$(curl -s -X POST "$base/v1/connections" -H "$auth" -H 'Content-Type: application/json' \
      -d "{\"tenant_id\":\"soak-$1-$n\",\"plugin\":\"sandbox\",\"credentials\":{\"access_token\":\"tok-$1-$n-$RANDOM\",\"expires_in\":86400}}" | field id)
    echo "import ${id:+201}" >>"$dir/codes.$BASHPID"
    [ -n "$id" ] && echo "$id" >>"$dir/imports.$1"
    hit token "$base/v1/connections/$id/token" -H "$auth"
    if [ "$(wc -l <"$dir/imports.$1")" -gt 200 ]; then
      hit delete -X DELETE "$base/v1/connections/$(head -n1 "$dir/imports.$1")" -H "$auth"
      sed -i 1d "$dir/imports.$1"
    fi
  done
}

flows() {
  local n=0 link token conn authorize rid callback jar="$dir/jar.$1" ids="$dir/flows.$1"
  touch "$ids"
  while [ $SECONDS -lt $end ]; do
    if [ $SECONDS -ge $writes_until ]; then
      hit token "$base/v1/connections/$(shuf -n1 "$ids")/token" -H "$auth"
      hit proxy "$base/v1/connections/$(shuf -n1 "$ids")/proxy/me" -H "$auth"
      continue
    fi
    n=$((n + 1))
    link=$(curl -s -X POST "$base/v1/links" -H "$auth" -H 'Content-Type: application/json' \
      -d "{\"tenant_id\":\"soak-flow-$1-$n\",\"plugin\":\"sandbox\"}")
    token=$(field link_token <<<"$link")
    conn=$(field connection_id <<<"$link")
    authorize=$(curl -s -o /dev/null -w '%{redirect_url}' -c "$jar" "$base/connect/$token/authorize")
    rid=$(curl -s "$authorize" | sed -n 's/.*name="request_id" value="\([^"]*\)".*/\1/p')
    callback=$(curl -s -o /dev/null -w '%{redirect_url}' -X POST "$base/sandbox/authorize" \
      --data-urlencode "request_id=$rid" -d decision=approve -d login=soak)
    hit callback -b "$jar" "$callback"
    echo "$conn" >>"$ids"
    for _ in 1 2 3; do
      hit token "$base/v1/connections/$(shuf -n1 "$ids")/token" -H "$auth"
      hit proxy "$base/v1/connections/$(shuf -n1 "$ids")/proxy/me" -H "$auth"
    done
    hit refresh "$base/v1/connections/$(shuf -n1 "$ids")/token?force_refresh=true" -H "$auth"
    if [ "$(wc -l <"$ids")" -gt 50 ]; then
      hit delete -X DELETE "$base/v1/connections/$(head -n1 "$ids")" -H "$auth"
      sed -i 1d "$ids"
    fi
  done
}

sampler() {
  echo "seconds,rss_kib,threads,fds,db_bytes" >"$csv"
  local start=$SECONDS
  while [ $SECONDS -lt $end ]; do
    printf '%s,%s,%s,%s,%s\n' $((SECONDS - start)) \
      "$(awk '/^VmRSS/{print $2}' "/proc/$server/status")" \
      "$(awk '/^Threads/{print $2}' "/proc/$server/status")" \
      "$(ls "/proc/$server/fd" | wc -l)" \
      "$(stat -c %s "$dir/data/connect.redb")" >>"$csv"
    sleep 5
  done
}

mkdir -p "$(dirname "$csv")"
sampler &
pids+=($!)
importer a &
pids+=($!)
importer b &
pids+=($!)
flows a &
pids+=($!)
flows b &
pids+=($!)
for p in "${pids[@]}"; do wait "$p"; done
pids=()

echo "requests by route and status:"
cat "$dir"/codes.* 2>/dev/null | sort | uniq -c | sort -k2 || true
refreshed=$(grep -c "token refreshed" "$dir/err" || true)
forced=$(cat "$dir"/codes.* 2>/dev/null | grep -c "^refresh 200" || true)
background=$(sed -n 's/.*background refresh pass.*attempted=\([0-9]*\).*/\1/p' "$dir/err" | awk '{ n += $1 } END { print n + 0 }')
echo "token refreshes: $refreshed done; $forced forced by the load; $background due ones taken up by the scheduler"
echo "database: $(stat -c %s "$dir/data/connect.redb") bytes"
cp "$dir/err" "${csv%.csv}.log"
echo "warnings and errors in the appliance's log (${csv%.csv}.log), most frequent first:"
grep -E " (WARN|ERROR) " "$dir/err" | sed -E 's/^[^ ]+ +//; s/ [a-z_]+=.*//' | sort | uniq -c | sort -rn | head -n 5 || true
kill -TERM "$server"
wait "$server" || true
server=
awk -F, 'NR == 2 { first = $2 } NR > 1 { last = $2; if ($2 > max) max = $2; m = int($1 / 60); if (!(m in at)) at[m] = $2 }
  END {
    printf "RSS KiB: start %d, end %d, max %d (%d samples in %s)\n", first, last, max, NR - 1, FILENAME
    printf "RSS KiB at each minute:"; for (i = 0; i in at; i++) printf " %d", at[i]; printf "\n"
  }' "$csv"
if grep -q panicked "$dir/err"; then
  echo "the appliance panicked:" >&2
  grep -A5 panicked "$dir/err" >&2
  exit 1
fi
