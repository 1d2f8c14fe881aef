#!/usr/bin/env bash
# Install edge-agent as a hardened systemd service on a home hub (GitHub issue 18), from this clone.
#
#   sudo deploy/install.sh [--with-training] [--bundle DIR] [--python PY]   install or upgrade in place
#   sudo deploy/install.sh --uninstall [--purge]                            remove (state/config kept unless --purge)
#   deploy/install.sh --root DIR ...                                        stage into DIR (no user, no systemctl)
#
# What it lays down (every path under --root when given):
#   /opt/edge-agent/venv            runtime venv (+ the `train` extra and torch with --with-training)
#   /etc/systemd/system/edge-agent.service, /etc/systemd/system/mosquitto.service.d/edge-agent.conf
#   /etc/edge-agent/config.yaml     from deploy/example-config.yaml, only if absent (a person's config is kept)
#   /etc/edge-agent/mqtt-password   the broker password (LoadCredential= source), created empty if absent
#   /var/lib/edge-agent             state (database, bundles): kept on upgrade and on --uninstall
# A second run upgrades the package in place and keeps state and config.
set -euo pipefail

SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ROOT=""
PY=python3
MODE=install
PURGE=0
WITH_TRAINING=0
BUNDLE=""
PIP_EXTRA=()
TORCH_PIN="torch==2.13.0"
USER_NAME=edge-agent

say() { echo "edge-agent install: $*"; }
die() { echo "edge-agent install: $*" >&2; exit 1; }

while [ $# -gt 0 ]; do
  case "$1" in
    --root) ROOT=${2:?--root needs a directory}; shift ;;
    --python) PY=${2:?--python needs an interpreter}; shift ;;
    --with-training) WITH_TRAINING=1 ;;
    --bundle) BUNDLE=${2:?--bundle needs a bundle directory}; shift ;;
    --uninstall) MODE=uninstall ;;
    --purge) PURGE=1 ;;
    --pip-no-deps) PIP_EXTRA+=(--no-deps) ;;  # staging/tests: lay out the package only, deps not fetched
    -h|--help) sed -n '2,14p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown option $1 (see --help)" ;;
  esac
  shift
done
[ "$PURGE" = 1 ] && [ "$MODE" != uninstall ] && die "--purge goes with --uninstall"
if [ -n "$BUNDLE" ] && [ ! -f "$BUNDLE/manifest.json" ]; then
  die "--bundle $BUNDLE: no manifest.json there; give a model bundle directory"
fi
if [ -n "$ROOT" ]; then
  mkdir -p "$ROOT"
  ROOT=$(cd "$ROOT" && pwd)
elif [ "$(id -u)" != 0 ]; then
  die "run as root (sudo $0 $*), or stage into a directory with --root DIR"
fi

OPT="$ROOT/opt/edge-agent"
VENV="$OPT/venv"
UNITDIR="$ROOT/etc/systemd/system"
UNIT="$UNITDIR/edge-agent.service"
DROPIN_DIR="$UNITDIR/mosquitto.service.d"
DROPIN="$DROPIN_DIR/edge-agent.conf"
ETC="$ROOT/etc/edge-agent"
STATE="$ROOT/var/lib/edge-agent"

# systemctl only on the real system with systemd as PID 1 (the canonical test: /run/systemd/system exists).
systemd_here() { [ -z "$ROOT" ] && [ -d /run/systemd/system ] && command -v systemctl >/dev/null; }
why_not_systemd() {
  if [ -n "$ROOT" ]; then echo "staged under --root $ROOT"; else echo "systemd is not PID 1 on this machine"; fi
}
user_exists() { [ -z "$ROOT" ] && getent passwd "$USER_NAME" >/dev/null; }

uninstall() {
  if systemd_here; then
    systemctl disable --now edge-agent.service 2>/dev/null || true
  fi
  rm -f "$UNIT" "$DROPIN"
  rmdir "$DROPIN_DIR" 2>/dev/null || true
  rm -rf "$OPT"
  if systemd_here; then
    systemctl daemon-reload
    systemctl try-restart mosquitto.service 2>/dev/null || true  # drop the priority drop-in
  fi
  if [ "$PURGE" = 1 ]; then
    rm -rf "$STATE" "$ETC"
    if user_exists; then userdel "$USER_NAME" 2>/dev/null || say "could not remove user $USER_NAME"; fi
    say "removed, state ($STATE) and config ($ETC) purged"
  else
    say "removed; kept the state ($STATE) and config ($ETC): --uninstall --purge deletes them"
  fi
}

create_user() {
  if [ -n "$ROOT" ]; then
    say "staged under --root: system user $USER_NAME not created"
  elif ! getent passwd "$USER_NAME" >/dev/null; then
    useradd --system --user-group --home-dir /var/lib/edge-agent --no-create-home \
      --shell /usr/sbin/nologin --comment "edge-agent smart-home controller" "$USER_NAME"
    say "created system user $USER_NAME"
  fi
}

install_venv() {
  mkdir -p "$OPT"
  bash "$SRC/deploy/ensure-venv.sh" "$PY" "$VENV"
  "$VENV/bin/python" -m pip install -q --upgrade pip
  local target="$SRC"
  if [ "$WITH_TRAINING" = 1 ]; then
    # torch first and pinned: an unpinned torch resolves a multi-GB CUDA build
    "$VENV/bin/python" -m pip install -q "${PIP_EXTRA[@]}" "$TORCH_PIN"
    target="$SRC[train]"
  fi
  # Not editable: the service runs a copy, so the clone can be edited or deleted without touching it.
  "$VENV/bin/python" -m pip install -q --upgrade --force-reinstall --no-deps "$SRC"
  if [ ${#PIP_EXTRA[@]} -eq 0 ]; then
    "$VENV/bin/python" -m pip install -q --upgrade "$target"  # dependencies (runtime, or + train)
  fi
  install -m 0644 "$SRC/README.md" "$OPT/README.md"
  say "package installed in $VENV ($("$VENV/bin/python" -c 'import edge_agent; print(edge_agent.__version__)' 2>/dev/null || echo '?'))"
}

install_files() {
  mkdir -p "$UNITDIR" "$DROPIN_DIR"
  install -m 0644 "$SRC/systemd/edge-agent.service" "$UNIT"
  install -m 0644 "$SRC/systemd/mosquitto.service.d/edge-agent.conf" "$DROPIN"
  install -d -m 0755 "$ETC"
  if [ ! -e "$ETC/config.yaml" ]; then
    install -m 0640 "$SRC/deploy/example-config.yaml" "$ETC/config.yaml"
    say "wrote $ETC/config.yaml from deploy/example-config.yaml: edit it (topics, devices, broker)"
  else
    say "kept the existing $ETC/config.yaml"
  fi
  if [ ! -e "$ETC/mqtt-password" ]; then
    install -m 0600 /dev/null "$ETC/mqtt-password"
    say "created an empty $ETC/mqtt-password: write the broker password there (root-only; handed over by LoadCredential=)"
  fi
  install -d -m 0750 "$STATE"
  if [ -n "$BUNDLE" ]; then
    rm -rf "$STATE/bundle.new"
    cp -r "$BUNDLE" "$STATE/bundle.new"
    rm -rf "$STATE/bundle.old"
    if [ -e "$STATE/bundle" ]; then mv "$STATE/bundle" "$STATE/bundle.old"; fi
    mv "$STATE/bundle.new" "$STATE/bundle"
    rm -rf "$STATE/bundle.old"
    say "bundle installed in $STATE/bundle"
  fi
  if user_exists; then
    chown root:"$USER_NAME" "$ETC/config.yaml"
    chown -R "$USER_NAME:$USER_NAME" "$STATE"
  fi
}

start_service() {
  if ! systemd_here; then
    say "not started: $(why_not_systemd) (on the hub: systemctl daemon-reload && systemctl enable --now edge-agent)"
    return
  fi
  systemctl daemon-reload
  systemctl try-restart mosquitto.service 2>/dev/null || true  # apply the priority drop-in
  local bundle
  bundle=$(sed -n 's/^bundle:[[:space:]]*\([^#[:space:]]*\).*/\1/p' "$ETC/config.yaml" | head -n1)
  if [ -n "$bundle" ] && [ ! -f "$bundle/manifest.json" ]; then
    systemctl enable edge-agent.service
    say "enabled, not started: no model bundle at $bundle (rerun with --bundle DIR, then systemctl start edge-agent)"
    return
  fi
  systemctl enable edge-agent.service
  systemctl restart edge-agent.service  # an upgrade restarts onto the new code
  say "started: systemctl status edge-agent; journalctl -u edge-agent -f"
}

if [ "$MODE" = uninstall ]; then
  uninstall
  exit 0
fi
create_user
install_venv
install_files
start_service
