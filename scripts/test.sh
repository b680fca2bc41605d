#!/usr/bin/env bash
# Set up and run the whole test suite: install rpcfw with its dev extras into .venv
# (scripts/venv.sh; nothing goes into the system Python), install Debian's etcd-server when it is
# missing (the etcd integration tests start their own on free ports), then lint (ruff),
# type-check (mypy --strict) and test (pytest) with that venv.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/venv.sh .venv 'typing,dev,etcd'
export PATH="$PWD/.venv/bin:$PATH"

if [ ! -x /usr/bin/etcd ] && [ "${RPCFW_SKIP_ETCD:-}" != 1 ]; then  # the switch: local runs only
  echo "== installing etcd-server (Debian package)"
  if [ "$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi
  export DEBIAN_FRONTEND=noninteractive
  if ! { $SUDO apt-get update -qq >/dev/null && $SUDO apt-get install -y -qq etcd-server >/dev/null; }
  then
    echo "error: could not install Debian's etcd-server; the etcd tests need /usr/bin/etcd" >&2
    exit 1
  fi
fi

echo "== ruff"
.venv/bin/python -m ruff check .
echo "== mypy --strict (rpcfw, codegen)"
.venv/bin/python -m mypy rpcfw
.venv/bin/python -m mypy codegen
echo "== pytest"
.venv/bin/python -m pytest -q -p no:cacheprovider "$@"
