#!/usr/bin/env bash
# Create a Python venv even on a Debian whose python3 lacks the venv/ensurepip module.
set -euo pipefail
PY=${1:-python3}; VENV=${2:-.venv}
if ! command -v "$PY" >/dev/null; then
  echo "edge-agent: $PY not found; install Python 3.11+ (apt-get install -y python3)" >&2; exit 1
fi
if "$PY" -m venv "$VENV" 2>/dev/null && [ -x "$VENV/bin/pip" ]; then exit 0; fi
rm -rf "$VENV"
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  ver=$("$PY" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
  apt-get update -qq && (apt-get install -y -qq "python${ver}-venv" || apt-get install -y -qq python3-venv)
  "$PY" -m venv "$VENV"
else
  # No root: a venv without pip, then pip's own bootstrap as a user.
  "$PY" -m venv --without-pip "$VENV" || { echo "edge-agent: cannot create a venv; install python3-venv" >&2; exit 1; }
  echo "edge-agent: python3-venv missing; bootstrapping pip with get-pip.py" >&2
  curl -fsSL https://bootstrap.pypa.io/get-pip.py | "$VENV/bin/python"
fi
