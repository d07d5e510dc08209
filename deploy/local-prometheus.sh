#!/usr/bin/env bash
# Makes sure this machine has the Prometheus server the Grafana dashboard's test
# (tests/all/grafana.rs) runs: Debian's `prometheus`, started by the test itself on a free
# port with a configuration of its own. Installs it from Debian's packages when it is
# missing, and stops the service the package may start (this machine's port 9090 stays
# free). Exits non-zero, saying why, when it cannot be had.
set -euo pipefail

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

if ! [ -x /usr/bin/prometheus ]; then
  echo "installing prometheus from Debian's packages" >&2
  as_root apt-get update -qq
  # policy-rc.d: the package's service is not started (the test runs its own server).
  policy=/usr/sbin/policy-rc.d
  made_policy=
  if ! [ -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' | as_root tee "$policy" >/dev/null
    as_root chmod +x "$policy"
    made_policy=1
  fi
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null
  if [ -n "$made_policy" ]; then as_root rm -f "$policy"; fi
fi
/usr/bin/prometheus --version 2>&1 | head -1 >&2
