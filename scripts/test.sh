#!/usr/bin/env bash
# Set up and run the whole test suite: install rpcfw with its dev extras, install Debian's
# etcd-server when it is missing (the etcd integration tests start their own on free ports),
# then lint (ruff), type-check (mypy --strict) and test (pytest).
set -euo pipefail
cd "$(dirname "$0")/.."

export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore
python3 -m pip install -q -e '.[dev,etcd]'

if ! command -v etcd >/dev/null 2>&1; then
  echo "== installing etcd-server (Debian package)"
  if [ "$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq >/dev/null && $SUDO apt-get install -y -qq etcd-server >/dev/null \
    || echo "warning: could not install etcd-server; etcd tests will be skipped" >&2
fi

echo "== ruff"
python3 -m ruff check .
echo "== mypy --strict (rpcfw, codegen)"
python3 -m mypy rpcfw
python3 -m mypy codegen
echo "== pytest"
python3 -m pytest -q -p no:cacheprovider "$@"
