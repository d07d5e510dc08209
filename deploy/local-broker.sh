#!/usr/bin/env bash
# Makes sure a RabbitMQ broker answers on 127.0.0.1:5672 (or WASMQ_BROKER_HOST /
# WASMQ_BROKER_PORT): starts the installed rabbitmq-server when none answers, installing
# it from Debian's packages first when it is missing. Exits non-zero, saying why, when no
# broker can be had. The fault tests start a private node with the installed
# rabbitmq-server; when another broker answers and rabbitmq-server is missing, it warns.
# On this machine's node it also enables the management API (port 15672), which
# `wasmq status` and `wasmq dashboard` read unacked counts and rates from, and the
# Prometheus endpoint (port 15692), which the Grafana dashboard's test scrapes.
set -euo pipefail
host="${WASMQ_BROKER_HOST:-127.0.0.1}"
port="${WASMQ_BROKER_PORT:-5672}"

answers() { (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null; }

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

has_server() { command -v rabbitmq-server >/dev/null 2>&1 || [ -x /usr/sbin/rabbitmq-server ]; }

# The management API (rabbitmq_management) tells `wasmq status` how many messages are
# unacked; rabbitmq_prometheus serves the queue metrics the Grafana dashboard shows. Both
# ship with the server, and are enabled on this machine's node when they are not yet.
port_answers() { (exec 3<>"/dev/tcp/$host/$1") 2>/dev/null; }
management() {
  if { port_answers 15672 && port_answers 15692; } || { [ "$host" != 127.0.0.1 ] && [ "$host" != localhost ]; }; then
    return 0
  fi
  if ! PATH="$PATH:/usr/sbin" command -v rabbitmq-plugins >/dev/null 2>&1; then
    echo "warning: rabbitmq-plugins is missing: the management API stays off" >&2
    return 0
  fi
  echo "enabling the rabbitmq_management and rabbitmq_prometheus plugins" >&2
  PATH="$PATH:/usr/sbin" as_root rabbitmq-plugins enable --quiet rabbitmq_management rabbitmq_prometheus >/dev/null 2>&1 || true
  for _ in $(seq 1 30); do
    if port_answers 15672 && port_answers 15692; then
      echo "the management API answers on $host:15672, and Prometheus metrics on $host:15692" >&2
      return 0
    fi
    sleep 1
  done
  echo "warning: the management API or the Prometheus endpoint did not start on $host (15672, 15692)" >&2
}

if answers; then
  echo "rabbitmq answers on $host:$port" >&2
  if ! has_server; then
    echo "warning: rabbitmq-server is not installed here; the fault tests (tests/all/faults.rs) start a private node of their own and need it: apt-get install rabbitmq-server" >&2
  fi
  management
  exit 0
fi
if [ "$host" != 127.0.0.1 ] && [ "$host" != localhost ]; then
  echo "no broker answers on $host:$port, and it is not this machine's to start" >&2
  exit 1
fi


if ! has_server; then
  echo "rabbitmq-server is not installed; installing it from Debian's packages" >&2
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq rabbitmq-server >/dev/null
fi
echo "starting rabbitmq-server" >&2
PATH="$PATH:/usr/sbin" as_root rabbitmq-server -detached >/dev/null 2>&1 || true
for _ in $(seq 1 90); do
  if answers; then
    echo "rabbitmq answers on $host:$port" >&2
    management
    exit 0
  fi
  sleep 1
done
echo "rabbitmq-server did not start listening on $host:$port within 90 s; see /var/log/rabbitmq" >&2
exit 1
