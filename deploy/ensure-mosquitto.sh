#!/usr/bin/env bash
# Make sure the mosquitto broker binary exists (tests and the demo start their own instance).
set -euo pipefail
if command -v mosquitto >/dev/null || [ -x /usr/sbin/mosquitto ]; then exit 0; fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "edge-agent: installing mosquitto with apt-get" >&2
  apt-get update -qq && apt-get install -y -qq mosquitto mosquitto-clients
else
  echo "edge-agent: mosquitto is missing: run 'sudo apt-get install -y mosquitto mosquitto-clients'" >&2
  exit 1
fi
