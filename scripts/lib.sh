# shellcheck shell=bash
# Shared helpers for scripts/run and scripts/test. Source it; do not run it.
#
#   source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
#
# Provides: REPO_ROOT, VENV, say/warn/die, is_root, find_python, ensure_venv, ensure_debian_packages,
# free_port.

set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$REPO_ROOT/.venv"
# Messages are prefixed with the script that sourced us ("scripts/test: ...").
SCRIPT_NAME="scripts/$(basename "$0")"

say() { printf '%s: %s\n' "$SCRIPT_NAME" "$*" >&2; }
warn() { printf '%s: warning: %s\n' "$SCRIPT_NAME" "$*" >&2; }
die() {
    printf '%s: error: %s\n' "$SCRIPT_NAME" "$*" >&2
    exit 1
}

is_root() { [[ "$(id -u)" -eq 0 ]]; }

# Print the path of a Python >= 3.11. $PYTHON, if set, is used as given.
find_python() {
    local candidate path
    for candidate in ${PYTHON:-} python3.11 python3 python3.13 python3.12; do
        path="$(command -v "$candidate" 2>/dev/null)" || continue
        if "$path" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
            printf '%s\n' "$path"
            return 0
        fi
    done
    return 1
}

# ensure_venv [EXTRAS]: create .venv if missing or broken, then install the locked dependencies
# (requirements.lock, or requirements-dev.lock for `dev`) with their hashes and the project itself, unless
# the stamp says this lock file and pyproject.toml were already installed.
ensure_venv() {
    local extras="${1:-}"
    local stamp="$VENV/.ivr-install-stamp"
    local python lock wanted

    if ! "$VENV/bin/python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
        python="$(find_python)" || die "no Python >= 3.11 found (tried python3.11, python3); install python3.11 or set PYTHON=/path/to/python"
        if [[ -e "$VENV" ]]; then
            warn "$VENV is broken or too old; recreating it"
            rm -rf "$VENV"
        fi
        say "creating $VENV with $python ($("$python" --version 2>&1))"
        "$python" -m venv "$VENV" \
            || die "could not create $VENV with $python (on Debian, install python3-venv for it)"
    fi

    lock="$REPO_ROOT/requirements.lock"
    [[ "$extras" == dev ]] && lock="$REPO_ROOT/requirements-dev.lock"
    [[ -f "$lock" ]] || die "$lock is missing (make it with ./scripts/lock)"
    wanted="$(_install_stamp "$lock") extras=$extras"
    # A dev install also satisfies a plain one, so `scripts/run` after `scripts/test` installs nothing.
    if [[ -f "$stamp" ]]; then
        local have
        have="$(cat "$stamp")"
        if [[ "$have" == "$wanted" || ( -z "$extras" \
              && "$have" == "$(_install_stamp "$REPO_ROOT/requirements-dev.lock") extras=dev" ) ]]; then
            return 0
        fi
    fi

    say "installing $(basename "$lock") into .venv (pip install --require-hashes; the lock or pyproject.toml changed)"
    # pip's own configuration (local indexes, /etc/xdg/pip constraints) applies as is: do not override it.
    "$VENV/bin/python" -m pip install --quiet --require-hashes -r "$lock" \
        || die "pip install --require-hashes -r $(basename "$lock") failed (see pip's output above)"
    (cd "$REPO_ROOT" && "$VENV/bin/python" -m pip install --quiet --no-deps -e .) \
        || die "pip install --no-deps -e . failed (see pip's output above)"
    printf '%s\n' "$wanted" >"$stamp"
}

_install_stamp() {
    cat "$REPO_ROOT/pyproject.toml" "$1" 2>/dev/null | sha256sum | cut -d' ' -f1
}

# ensure_debian_packages PKG...: install what is missing when root; otherwise say which command to run
# and return 1. Callers decide whether a missing package is fatal.
_APT_UPDATED=0
ensure_debian_packages() {
    local pkg missing=()
    if ! command -v dpkg-query >/dev/null 2>&1; then
        warn "dpkg-query not found (not a Debian-based system?); cannot check for: $*"
        return 1
    fi
    for pkg in "$@"; do
        if [[ "$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null)" != "installed" ]]; then
            missing+=("$pkg")
        fi
    done
    [[ ${#missing[@]} -eq 0 ]] && return 0

    if ! is_root; then
        warn "missing Debian packages: ${missing[*]}"
        warn "install them with: sudo apt-get install -y --no-install-recommends ${missing[*]}"
        return 1
    fi

    # Wait for a concurrent apt/dpkg rather than failing on its lock.
    local apt=(apt-get -o DPkg::Lock::Timeout=600 -q)
    if [[ "$_APT_UPDATED" -eq 0 ]]; then
        say "apt-get update"
        if ! "${apt[@]}" update >/dev/null; then
            warn "apt-get update failed; cannot install: ${missing[*]}"
            return 1
        fi
        _APT_UPDATED=1
    fi
    say "installing Debian packages: ${missing[*]}"
    if ! DEBIAN_FRONTEND=noninteractive "${apt[@]}" install -y --no-install-recommends "${missing[@]}" >/dev/null; then
        warn "apt-get install failed for: ${missing[*]}"
        return 1
    fi
}

# Print a TCP port on 127.0.0.1 that is free right now (ivr.devphone.net, as the tests use).
free_port() {
    "$VENV/bin/python" -c 'from ivr.devphone.net import free_port; print(free_port())'
}
