#!/usr/bin/env bash
# Sets up .venv in the repository (first run only) and runs jaxgan.
#   ./run.sh                  train the default config into runs/default (resumes if present)
#   ./run.sh test [ARGS...]   install the test dependencies (and, as root, chromium with apt-get)
#                             and run the whole test suite. JAXGAN_NO_APT=1 skips apt-get; the
#                             browser test then runs only if chromium is already installed.
#   ./run.sh train ARGS...    run python -m jaxgan.main with ARGS; relative paths in ARGS are
#                             resolved against the current folder, as with any command
set -euo pipefail
REPO="$(cd "$(dirname "$0")" && pwd)"

PYTHON="${PYTHON:-python3}"
VENV="$REPO/.venv"

ensure_venv() {
  if [ ! -x "$VENV/bin/python" ]; then
    echo "Creating the virtual environment $VENV with $("$PYTHON" --version)"
    "$PYTHON" -m venv "$VENV"
  fi
  local extras="$1"
  local stamp="$VENV/.installed$extras"
  # Reinstall when pyproject.toml changed since the last install.
  if [ ! -f "$stamp" ] || [ "$REPO/pyproject.toml" -nt "$stamp" ]; then
    "$VENV/bin/python" -m pip install --quiet --upgrade pip
    "$VENV/bin/python" -m pip install --quiet -e "$REPO$extras"
    touch "$stamp"
  fi
}

# Installs Debian's chromium and chromium-driver for the report's browser test when they are
# missing. Any failure (no apt-get, not root, no registry) only prints a warning: the test then
# skips and states why.
ensure_browser() {
  if command -v chromium >/dev/null 2>&1 && [ -x /usr/bin/chromedriver ]; then
    return 0
  fi
  if [ "${JAXGAN_NO_APT:-0}" = "1" ]; then
    echo "Warning: chromium is missing and JAXGAN_NO_APT=1 skips installing it with apt-get;" \
      "the browser test will be skipped." >&2
    return 0
  fi
  if ! command -v apt-get >/dev/null 2>&1 || [ "$(id -u)" -ne 0 ]; then
    echo "Warning: chromium is missing and cannot be installed here (needs apt-get as root);" \
      "the browser test will be skipped." >&2
    return 0
  fi
  echo "Installing chromium and chromium-driver with apt-get for the browser test"
  if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
      chromium chromium-driver >/dev/null; }; then
    echo "Warning: apt-get could not install chromium; the browser test will be skipped." >&2
  fi
}

command="${1:-default}"
case "$command" in
  default)
    ensure_venv ""
    cd "$REPO"
    exec "$VENV/bin/python" -m jaxgan.main --config configs/default.py --workdir runs/default
    ;;
  train)
    shift
    ensure_venv ""
    exec "$VENV/bin/python" -m jaxgan.main "$@"
    ;;
  test)
    shift
    ensure_venv "[test]"
    ensure_browser
    cd "$REPO"
    # Two pytest workers on a 2-core machine; each test forces its own CPU device count.
    exec "$VENV/bin/python" -m pytest -n "${JAXGAN_TEST_WORKERS:-2}" "$@"
    ;;
  *)
    echo "Unknown command '$command'. Use: ./run.sh, ./run.sh test, or ./run.sh train ARGS..." >&2
    exit 2
    ;;
esac
