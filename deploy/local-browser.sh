#!/usr/bin/env bash
# Makes sure this machine has the browser the dashboard test (tests/all/dashboard.rs)
# drives: Debian's `chromium`, run headless by the test itself. Installs it from Debian's
# packages when it is missing; starts nothing. Exits non-zero, saying why, when it cannot
# be had.
set -euo pipefail

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

if ! [ -x /usr/bin/chromium ]; then
  echo "installing chromium from Debian's packages" >&2
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null
fi
/usr/bin/chromium --version >&2
