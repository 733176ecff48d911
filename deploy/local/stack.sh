#!/usr/bin/env bash
# Start, inspect or stop the local Kafka + PostgreSQL stack: stack.sh {start|status|stop|remove|fetch}.
# Uses the repository's .venv when there is one, else $PYTHON or python3.
set -euo pipefail
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
python="${PYTHON:-python3}"
if [[ -z "${PYTHON:-}" && -x "$repo_root/.venv/bin/python" ]]; then
    python="$repo_root/.venv/bin/python"
fi
exec "$python" -m defectline.deploy.local.stack "$@"
