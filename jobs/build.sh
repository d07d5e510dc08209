#!/usr/bin/env bash
# Builds the guest programs under jobs/guests and copies them to jobs/wasm/:
# WASI preview 1 core modules (commands and the `upper` plugin) for wasm32-wasip1, and
# components (a preview 2 command and a wasmq:job/handler) for wasm32-wasip2. Installs
# the targets through rustup when they are missing.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
for target in wasm32-wasip1 wasm32-wasip2; do
  if ! rustup target list --installed 2>/dev/null | grep -qx "$target"; then
    echo "installing the $target target" >&2
    rustup target add "$target"
  fi
done
manifest="$here/guests/Cargo.toml"
out="$here/guests/target"
cargo build --quiet --release --manifest-path "$manifest" --target wasm32-wasip1 \
  -p hello -p wordcount -p jsonx -p hashbench -p fsprobe -p upper
cargo build --quiet --release --manifest-path "$manifest" --target wasm32-wasip2 \
  -p hello -p misbehave -p handler
mkdir -p "$here/wasm"
for g in hello wordcount jsonx hashbench fsprobe upper; do
  cp "$out/wasm32-wasip1/release/$g.wasm" "$here/wasm/$g.wasm"
done
cp "$out/wasm32-wasip2/release/hello.wasm" "$here/wasm/hello-p2.wasm"
cp "$out/wasm32-wasip2/release/misbehave.wasm" "$here/wasm/misbehave-p2.wasm"
cp "$out/wasm32-wasip2/release/handler.wasm" "$here/wasm/handler.wasm"
ls -l "$here"/wasm/*.wasm >&2
