#!/usr/bin/env bash
# A fully static Linux binary (musl) for air-gapped installs:
#   target/x86_64-unknown-linux-musl/release/connect-appliance
# Needs Debian's musl-tools (for the C parts of `ring`) and the rustup musl target; installs
# both when it can (apt as root; rustup from its distribution server).
set -euo pipefail
cd "$(dirname "$0")/.."
TARGET=x86_64-unknown-linux-musl

if ! command -v musl-gcc >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq musl-tools >/dev/null
  else
    echo "error: the static build needs musl-gcc: sudo apt-get install -y musl-tools" >&2
    exit 1
  fi
fi
if ! rustup target list --installed | grep -qx "$TARGET"; then
  rustup target add "$TARGET"
fi
cargo build --release --locked --target "$TARGET" "$@"
BIN="target/$TARGET/release/connect-appliance"
# Static or static-pie, and no dynamic loader requested.
if ! file "$BIN" | grep -Eq 'static(-pie)? linked'; then
  echo "error: $BIN is not statically linked:" >&2
  file "$BIN" >&2
  exit 1
fi
"$BIN" --version
ls -l "$BIN"
