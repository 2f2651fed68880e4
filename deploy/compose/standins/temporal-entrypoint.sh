#!/bin/sh
# Temporal's image entrypoint (docker/scripts/sh/entrypoint.sh): bind address and broadcast address from the
# container's own name, then the server with its embedded configuration template.
set -eu
: "${BIND_ON_IP:=$(getent hosts "$(hostname)" | awk '{print $1;}')}"
export BIND_ON_IP
if [ "${BIND_ON_IP}" = "0.0.0.0" ] || [ "${BIND_ON_IP}" = "::0" ]; then
  : "${TEMPORAL_BROADCAST_ADDRESS:=$(getent hosts "$(hostname)" | awk '{print $1;}')}"
  export TEMPORAL_BROADCAST_ADDRESS
fi
exec temporal-server start
