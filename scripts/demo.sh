#!/usr/bin/env bash
# Set up .venv (scripts/venv.sh) and run the demo: stubs generated from proto/, three servers,
# every call kind through one round-robin channel. Options go to `rpcfw demo` (see --help).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/venv.sh .venv typing
exec .venv/bin/rpcfw demo "$@"
