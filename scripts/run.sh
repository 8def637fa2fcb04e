#!/usr/bin/env bash
# `make run`: migrate, make sure a development API key exists, start the runner and Daphne.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
PORT=${PORT:-8000}
$PY manage.py migrate --no-input -v 0
KEY=$($PY scripts/dev_key.py)
cat <<MSG

  Arkloop Runs is starting on http://127.0.0.1:${PORT}  (SQLite, stub provider)
  Development API key (org "dev", admin dev@example.com):

    ${KEY}

  Try it:
    curl -s -X POST http://127.0.0.1:${PORT}/v1/threads -H "Authorization: Bearer ${KEY}" -H 'Content-Type: application/json' -d '{"title":"hello"}'
    curl -s http://127.0.0.1:${PORT}/readyz            # health; metrics at /metrics
  API docs: docs/api.md and http://127.0.0.1:${PORT}/v1/docs    Admin: http://127.0.0.1:${PORT}/admin/ (manage.py createsuperuser)

MSG
RUNNER_PID=""
if $PY manage.py help runagents >/dev/null 2>&1; then
  $PY manage.py runagents &
  RUNNER_PID=$!
fi
trap '[ -n "$RUNNER_PID" ] && kill -TERM $RUNNER_PID 2>/dev/null; wait' EXIT INT TERM
PYTHON=$PY bash scripts/daphne.sh 127.0.0.1 "$PORT"   # listen backlog 2048 (scripts/daphne.sh)
