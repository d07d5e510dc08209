#!/usr/bin/env bash
# Makes the Python venv of the example submitter at target/python-venv (relative to the
# repository root) and installs clients/python/requirements.txt into it, again whenever
# that file (or the Python that made the venv) changes. Prints the venv's python.
#
#   PY=$(clients/python/setup.sh) && "$PY" clients/python/wasmq_submit.py --help
#
# PYTHON chooses the interpreter the venv is made from (default: python3; 3.10 or later).
# Safe to run concurrently: a lock serialises the processes that share the venv.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
venv="$root/target/python-venv"
requirements="$here/requirements.txt"
python="${PYTHON:-python3}"

command -v "$python" >/dev/null || {
    echo "error: $python not found; install Python 3 (Debian: apt-get install python3 python3-venv) or set PYTHON" >&2
    exit 2
}
mkdir -p "$root/target"
exec 9>"$root/target/python-venv.lock"
flock 9

# The stamp covers what the venv was made from: the requirements and the interpreter.
want="$( { cat "$requirements"; "$python" -c 'import sys; print(sys.version)'; } | sha256sum | cut -d' ' -f1)"
stamp="$venv/.requirements.sha256"
if [[ -x "$venv/bin/python" && -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
    echo "$venv/bin/python"
    exit 0
fi

echo "setting up $venv from $requirements" >&2
rm -f "$stamp"
"$python" -m venv --clear "$venv" >&2 || {
    echo "error: could not create a venv with $python (Debian: apt-get install python3-venv)" >&2
    exit 2
}
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$requirements" >&2
echo "$want" >"$stamp"
echo "$venv/bin/python"
