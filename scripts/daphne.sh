#!/usr/bin/env bash
# Daphne as the project starts it everywhere (`make run`, the tests, the benchmarks), so that it
# listens with a backlog of ARKLOOP_LISTEN_BACKLOG connections (default 2048) instead of Twisted's
# 50: a burst of clients (1,000 browsers reconnecting after a restart) then waits in the kernel's
# queue instead of having its SYNs dropped and retried seconds later. The kernel caps the backlog
# at net.core.somaxconn (4096 on current kernels). See docs/deploy.md.
#
# Usage: scripts/daphne.sh HOST PORT [daphne options…]   (an IPv6 HOST needs its colons escaped: \:\:1)
set -euo pipefail
cd "$(dirname "$0")/.."
HOST=$1 PORT=$2
shift 2
exec "${PYTHON:-.venv/bin/python}" -m daphne \
  -e "tcp:port=${PORT}:interface=${HOST}:backlog=${ARKLOOP_LISTEN_BACKLOG:-2048}" "$@" arkloop.asgi:application
