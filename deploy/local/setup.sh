#!/usr/bin/env bash
# Install what defectline needs on a Debian or Ubuntu machine: PostgreSQL server binaries, Java
# and Maven (only when missing, as root), a Python 3.11+ virtual environment in .venv with the
# package and its dev tools, and the Kafka jars from Maven Central. Safe to re-run: each step
# skips what is already in place.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/../.."
export DEBIAN_FRONTEND=noninteractive
export PIP_DISABLE_PIP_VERSION_CHECK=1
export PIP_NO_INPUT=1

apt_updated=0
log() { printf 'setup: %s\n' "$*"; }

# Run one named step and print how long it took.
step() {
    local name=$1
    shift
    local started=$SECONDS
    log "$name ..."
    "$@"
    log "$name done in $((SECONDS - started)) s"
}

apt_install() {
    if ((EUID != 0)); then
        log "missing Debian packages: $*; install them with: sudo apt-get install $*"
        exit 1
    fi
    if ((apt_updated == 0)); then
        apt-get update -qq
        apt_updated=1
    fi
    apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

has_postgres() {
    command -v pg_ctl >/dev/null && command -v initdb >/dev/null && return 0
    compgen -G '/usr/lib/postgresql/*/bin/pg_ctl' >/dev/null
}

ensure_postgres() {
    if has_postgres; then
        log "PostgreSQL found"
        return
    fi
    apt_install postgresql
}

# mbpoll is the independent Modbus client the PLC tests read our register maps back with.
ensure_modbus_client() {
    command -v mbpoll >/dev/null || apt_install mbpoll
}

ensure_java_maven() {
    local missing=()
    command -v java >/dev/null || missing+=(default-jdk-headless)
    command -v mvn >/dev/null || missing+=(maven)
    if ((${#missing[@]} > 0)); then
        apt_install "${missing[@]}"
    fi
    # Kafka 4.1 brokers need Java 17 or newer.
    local major
    major=$(java -XshowSettings:properties -version 2>&1 | awk -F'= ' '/java.specification.version/ {print $2}')
    log "java ${major}, $(mvn -v 2>/dev/null | head -n 1 | sed 's/\x1b\[[0-9;]*m//g')"
    if ((${major%%.*} < 17)); then
        log "Java ${major} is too old for Kafka 4.1; install openjdk-17-jdk-headless or newer"
        exit 1
    fi
}

pick_python() {
    local candidate
    for candidate in "${PYTHON:-}" python3.11 python3; do
        [[ -n "$candidate" ]] || continue
        if command -v "$candidate" >/dev/null &&
            "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
            echo "$candidate"
            return
        fi
    done
    log "no Python 3.11 or newer found; install python3 (3.11+) or set PYTHON"
    exit 1
}

ensure_venv() {
    if [[ ! -x .venv/bin/python ]]; then
        local python
        python=$(pick_python)
        if ! "$python" -m venv .venv; then
            rm -rf .venv
            apt_install python3-venv
            "$python" -m venv .venv
        fi
    fi
    .venv/bin/python -m pip install -q -e ".[dev]"
}

step "PostgreSQL" ensure_postgres
step "Java and Maven" ensure_java_maven
step "Modbus client" ensure_modbus_client
step "Python environment" ensure_venv
step "Kafka jars" .venv/bin/python -m defectline.deploy.local.stack fetch

