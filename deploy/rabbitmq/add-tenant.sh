#!/usr/bin/env bash
# Creates (or updates) the RabbitMQ user of a wasmq tenant with exactly the permissions a
# tenant needs: submit jobs, read its own results (batch queues, reply_to queues), cancel
# its own jobs; and nothing of another tenant's. See README.md in this directory.
#
#   deploy/rabbitmq/add-tenant.sh USER PASSWORD
#
# Environment: WASMQ_QUEUE_PREFIX (default wasmq), WASMQ_VHOST (default /),
# RABBITMQCTL (default rabbitmqctl).
set -euo pipefail

if [ $# -ne 2 ]; then
  echo "usage: $0 USER PASSWORD" >&2
  exit 2
fi
user=$1
password=$2
prefix=${WASMQ_QUEUE_PREFIX:-wasmq}
vhost=${WASMQ_VHOST:-/}
ctl=${RABBITMQCTL:-rabbitmqctl}

# The user as one word of a routing key or queue name, as wasmq writes it: bytes other
# than A-Z a-z 0-9 _ - percent-encoded (so it has no '.').
word() {
  local s=$1 out="" c i
  local LC_ALL=C
  for ((i = 0; i < ${#s}; i++)); do
    c=${s:i:1}
    case $c in
      [A-Za-z0-9_-]) out+=$c ;;
      *) out+=$(printf '%%%02X' "'$c") ;;
    esac
  done
  printf '%s' "$out"
}

# A name as a regular expression that matches it alone.
quote() {
  printf '%s' "$1" | sed 's/[][\.*^$(){}+?|/]/\\&/g'
}

w=$(word "$user")
p=$(quote "$prefix")
configure="^(${p}\\.batch\\.${w}\\..+|amq\\.gen-.+)\$"
write="^(${p}\\.submit|${p}\\.results\\.private|${p}\\.control|${p}\\.batch\\.${w}\\..+)\$"
read="^(${p}\\.results\\.private|${p}\\.batch\\.${w}\\..+|amq\\.gen-.+)\$"

if "$ctl" -q list_users | awk '{print $1}' | grep -qxF -- "$user"; then
  "$ctl" -q change_password -- "$user" "$password"
else
  "$ctl" -q add_user -- "$user" "$password"
fi
"$ctl" -q set_permissions -p "$vhost" -- "$user" "$configure" "$write" "$read"
# Results: publish only a manifest of its own (two words), bind only its own keys.
"$ctl" -q set_topic_permissions -p "$vhost" -- "$user" "${prefix}.results.private" "^${w}\\.[^.]+\$" "^${w}\\."
# Jobs: only under its own name.
"$ctl" -q set_topic_permissions -p "$vhost" -- "$user" "${prefix}.submit" "^${w}\$" "^\$"
echo "tenant user ${user} on vhost ${vhost}, prefix ${prefix}:"
echo "  configure ${configure}"
echo "  write     ${write}"
echo "  read      ${read}"
echo "  topic ${prefix}.results.private: write ^${w}\\.[^.]+\$ read ^${w}\\."
echo "  topic ${prefix}.submit: write ^${w}\$ read ^\$"
