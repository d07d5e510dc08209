#!/usr/bin/env bash
# Offline checks of the deploy files: deploy/check.sh PATH_TO_WASMQ_BINARY
#
# Needs python3 (3.11 or later) and, the first time, PyPI: it keeps its packages in a
# virtualenv at target/deploy-venv and installs them again only when
# deploy/check-requirements.txt (or the python) changes. What it checks: deploy/README.md.
set -euo pipefail

if [ $# -ne 1 ]; then
  echo "usage: $0 PATH_TO_WASMQ_BINARY" >&2
  exit 2
fi
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
bin=$1
case $bin in
  /*) ;;
  *) bin=$PWD/$bin ;;
esac
python=${PYTHON:-python3}
venv=$root/target/deploy-venv
requirements=$here/check-requirements.txt
stamp=$venv/.requirements.sha256

want=$({ cat "$requirements"; "$python" -c 'import sys; print(sys.version)'; } | sha256sum | cut -d' ' -f1)
if [ ! -x "$venv/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null || true)" != "$want" ]; then
  echo "setting up $venv (pip install -r ${requirements#"$root"/})" >&2
  rm -rf "$venv"
  mkdir -p "$root/target"
  if "$python" -m venv "$venv" >/dev/null 2>&1 && [ -x "$venv/bin/pip" ]; then
    pip=("$venv/bin/python" -m pip)
  else
    # Debian's python3 without the python3-venv package has no ensurepip: make the venv
    # without pip and install into it with this python's own pip (pip 22.3 or later).
    rm -rf "$venv"
    "$python" -m venv --without-pip "$venv"
    pip=("$python" -m pip --python "$venv/bin/python")
  fi
  "${pip[@]}" install --quiet --disable-pip-version-check --no-input -r "$requirements"
  echo "$want" >"$stamp"
fi

exec "$venv/bin/python" "$here/check.py" --root "$root" --bin "$bin"
