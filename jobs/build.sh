#!/usr/bin/env bash
# Builds the guest programs under jobs/guests and copies them to jobs/wasm/:
# WASI preview 1 core modules (commands and the `upper` plugin) for wasm32-wasip1, and
# components (a preview 2 command and a wasmq:job/handler) for wasm32-wasip2. Installs
# the targets through rustup when they are missing.
# Then builds the C guests under jobs/guests-c (parity-c.wasm, a wasm32-wasi preview 1
# command) with Debian's clang, lld and wasi-libc, installing those packages with apt-get
# when they are missing.
#
#     jobs/build.sh [rust] [c]     (no argument: both)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
parts=("$@")
((${#parts[@]})) || parts=(rust c)
build_rust=0 build_c=0
for part in "${parts[@]}"; do
  case "$part" in
    rust) build_rust=1 ;;
    c) build_c=1 ;;
    *) echo "usage: $0 [rust] [c]" >&2; exit 2 ;;
  esac
done
mkdir -p "$here/wasm"

if ((build_rust)); then
  for target in wasm32-wasip1 wasm32-wasip2; do
    if ! rustup target list --installed 2>/dev/null | grep -qx "$target"; then
      echo "installing the $target target" >&2
      rustup target add "$target"
    fi
  done
  manifest="$here/guests/Cargo.toml"
  out="$here/guests/target"
  cargo build --quiet --release --manifest-path "$manifest" --target wasm32-wasip1 \
    -p hello -p wordcount -p jsonx -p hashbench -p fsprobe -p upper -p parity -p jsrun
  cargo build --quiet --release --manifest-path "$manifest" --target wasm32-wasip2 \
    -p hello -p misbehave -p handler -p parity -p exitcode
  for g in hello wordcount jsonx hashbench fsprobe upper parity jsrun; do
    cp "$out/wasm32-wasip1/release/$g.wasm" "$here/wasm/$g.wasm"
  done
  cp "$out/wasm32-wasip2/release/hello.wasm" "$here/wasm/hello-p2.wasm"
  cp "$out/wasm32-wasip2/release/misbehave.wasm" "$here/wasm/misbehave-p2.wasm"
  cp "$out/wasm32-wasip2/release/handler.wasm" "$here/wasm/handler.wasm"
  cp "$out/wasm32-wasip2/release/parity.wasm" "$here/wasm/parity-p2.wasm"
  cp "$out/wasm32-wasip2/release/exitcode.wasm" "$here/wasm/exitcode-p2.wasm"
fi

if ((build_c)); then
  # Debian 12's packages: clang and lld (LLVM 14: clang drives wasm-ld), wasi-libc (headers
  # in /usr/include/wasm32-wasi, libraries in /usr/lib/wasm32-wasi) and compiler-rt's
  # wasm32 builtins (libclang_rt.builtins-wasm32.a), which clang links into every module.
  c_packages=(clang lld wasi-libc libclang-rt-dev-wasm32)
  missing=()
  for p in "${c_packages[@]}"; do
    if [ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null)" != "install ok installed" ]; then
      missing+=("$p")
    fi
  done
  if ((${#missing[@]})); then
    echo "installing ${missing[*]} with apt-get" >&2
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo=sudo
    if ! $sudo apt-get update ||
      ! $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        "${missing[@]}"; then
      echo "error: could not install ${missing[*]} (needed to build jobs/guests-c)" >&2
      exit 1
    fi
  fi
  # Debian's clang finds the sysroot's multiarch directories (<sysroot>/include/wasm32-wasi,
  # <sysroot>/lib/wasm32-wasi), so the sysroot is /usr. wasm32-wasi is preview 1 (this
  # clang predates the wasm32-wasip1 spelling). --strip-debug drops the DWARF that Debian's
  # libc.a carries and keeps the name section for readable traps.
  for g in parity; do
    clang --target=wasm32-wasi --sysroot=/usr -O2 -Wall -Wextra \
      -Wl,--strip-debug -o "$here/wasm/$g-c.wasm" "$here/guests-c/$g.c"
  done
fi
ls -l "$here"/wasm/*.wasm >&2
