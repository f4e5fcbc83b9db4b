#!/usr/bin/env bash
# Makes sure the local RabbitMQ answers on 5672 and its management API on 15672.
# Enabling the management plugin needs no broker restart.
set -euo pipefail
mgmt=${WARREN_MANAGEMENT_URL:-http://127.0.0.1:15672}

wait_for() { # wait_for SECONDS CMD...
  local deadline=$((SECONDS + $1)); shift
  until "$@" >/dev/null 2>&1; do
    if ((SECONDS >= deadline)); then return 1; fi
    sleep 1
  done
}

amqp_up() { (exec 3<>/dev/tcp/127.0.0.1/5672) 2>/dev/null; }
mgmt_up() { curl -fsS -u guest:guest "$mgmt/api/overview" -o /dev/null; }

if ! amqp_up; then
  if command -v rabbitmq-server >/dev/null; then
    echo "starting rabbitmq-server" >&2
    rabbitmq-server -detached || true
  fi
  wait_for 90 amqp_up || { echo "RabbitMQ is not reachable on 127.0.0.1:5672 (docker compose up -d starts one)" >&2; exit 1; }
fi
if ! mgmt_up; then
  if command -v rabbitmq-plugins >/dev/null; then
    echo "enabling rabbitmq_management" >&2
    rabbitmq-plugins enable rabbitmq_management >/dev/null
  fi
  wait_for 60 mgmt_up || { echo "the RabbitMQ management API does not answer at $mgmt" >&2; exit 1; }
fi
