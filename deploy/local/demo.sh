#!/usr/bin/env bash
# First command on a fresh machine: set everything up (deploy/local/setup.sh), then run the
# demo on the embedded default plant. Arguments go to `defectline demo` (see --help).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
bash deploy/local/setup.sh
exec .venv/bin/defectline demo "$@"
