#!/usr/bin/env bash
# Runs every cargo-fuzz target (fuzz/fuzz_targets) for a bounded time each:
#   bash scripts/fuzz.sh [seconds per target, default 60] [target...]
# New corpus entries go to fuzz/corpus/<target> (not committed), next to each run's full log;
# the committed seeds are in fuzz/seeds/<target>. A failure stops the script, with the input
# saved under fuzz/artifacts/<target>/; replay it with
#   (cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run <target> artifacts/<target>/<file>)
set -euo pipefail
cd "$(dirname "$0")/../fuzz"

seconds="${1:-60}"
shift || true

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "installing cargo-fuzz..."
  cargo install cargo-fuzz --locked
fi
# libFuzzer's instrumentation and AddressSanitizer are switched on with -Z flags, which a stable
# toolchain accepts only with RUSTC_BOOTSTRAP=1 (no nightly toolchain can be had here).
export RUSTC_BOOTSTRAP=1

targets=("$@")
if [ "${#targets[@]}" -eq 0 ]; then
  mapfile -t targets < <(cargo fuzz list)
  cargo fuzz build
fi

for target in "${targets[@]}"; do
  mkdir -p "corpus/$target"
  log="corpus/$target.log"
  echo "== $target: ${seconds}s (log: fuzz/$log)"
  if ! cargo fuzz run "$target" "corpus/$target" "seeds/$target" -- \
    -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    >"$log" 2>&1; then
    tail -n 40 "$log" >&2
    echo "fuzz target $target failed; the input is under fuzz/artifacts/$target/" >&2
    exit 1
  fi
  grep -E "^stat::(number_of_executed_units|peak_rss_mb)|^#[0-9]+.*DONE" "$log" || true
done
echo "fuzzing done: ${#targets[@]} targets, ${seconds}s each"
