#!/usr/bin/env bash
# Builds the guest programs under jobs/guests for wasm32-wasip1 and copies them to
# jobs/wasm/. Installs the wasm32-wasip1 target through rustup when it is missing.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
target=wasm32-wasip1
if ! rustup target list --installed 2>/dev/null | grep -qx "$target"; then
  echo "installing the $target target" >&2
  rustup target add "$target"
fi
cargo build --quiet --release --target "$target" --manifest-path "$here/guests/Cargo.toml"
mkdir -p "$here/wasm"
for g in hello wordcount jsonx hashbench fsprobe; do
  cp "$here/guests/target/$target/release/$g.wasm" "$here/wasm/$g.wasm"
done
ls -l "$here"/wasm/*.wasm >&2
