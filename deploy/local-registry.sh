#!/usr/bin/env bash
# Makes sure this machine has what the registry tests (tests/all/registry.rs) start for
# themselves: the CNCF distribution registry from Debian's `docker-registry` package, and
# `htpasswd` (Debian's `apache2-utils`) for a registry with basic auth. Installs them from
# Debian's packages when they are missing; starts nothing (each test runs a registry of its
# own on a free port, with its own storage). Exits non-zero, saying why, when they cannot
# be had.
set -euo pipefail

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

missing=()
[ -x /usr/bin/docker-registry ] || missing+=(docker-registry)
command -v htpasswd >/dev/null 2>&1 || missing+=(apache2-utils)
if [ "${#missing[@]}" -gt 0 ]; then
  echo "installing ${missing[*]} from Debian's packages" >&2
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# The package's own service is not wanted: the tests start registries on free ports.
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet docker-registry 2>/dev/null; then
  echo "note: the docker-registry service is running; the tests do not use it" >&2
fi
/usr/bin/docker-registry --version >&2
