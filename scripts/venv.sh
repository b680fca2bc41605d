#!/usr/bin/env bash
# Create (or reuse) a virtual environment and install rpcfw into it: editable and typed.
#
#   bash scripts/venv.sh [VENV_DIR [EXTRAS]]     defaults: .venv and "typing"
#
# Nothing goes into the system Python, so this works on any stock Python >= 3.11, Debian's
# externally-managed (PEP 668) one included; where Debian's python3 lacks the venv module
# (package python3-venv), it is installed with apt-get.
#
# The install is the README's: pip install -e '.[EXTRAS]' --config-settings editable_mode=strict.
# Strict mode puts a plain path in the venv's .pth file (a tree of links to rpcfw/ and codegen/ in
# build/__editable__.*), which mypy and pyright follow; setuptools' default editable mode would
# install an import hook for the codegen/ -> rpcfw_codegen mapping that no type checker can see.
# Edits to existing files show at once; a module added later needs this script run again (the
# demo and test scripts run it every time). The "typing" extra brings types-protobuf, which
# type-checking code generated with --messages protobuf needs.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
venv="${1:-$root/.venv}"
extras="${2:-typing}"
python="${PYTHON:-python3}"
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore

if [ ! -x "$venv/bin/python" ]; then
  if ! "$python" -m venv "$venv" >/dev/null 2>&1; then
    rm -rf "$venv"
    if ! command -v apt-get >/dev/null 2>&1; then
      echo "error: '$python -m venv' failed; install Python's venv module" >&2
      exit 1
    fi
    echo "== installing python3-venv (Debian package)"
    if [ "$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -qq >/dev/null
    $SUDO apt-get install -y -qq python3-venv >/dev/null
    "$python" -m venv "$venv"
  fi
fi
"$venv/bin/python" -m pip install -q -e "$root[$extras]" --config-settings editable_mode=strict
