#!/usr/bin/env bash
# Installs everything the test suite needs (system packages, the virtualenv, the Node test
# dependencies, clients/js's), then runs ruff, mypy and pytest. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null 2>&1 || PY=python3

need=()
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v g++ >/dev/null 2>&1 || need+=(g++)
dpkg -s libssl-dev >/dev/null 2>&1 || need+=(libssl-dev)
command -v node >/dev/null 2>&1 || need+=(nodejs)
command -v npm >/dev/null 2>&1 || need+=(npm)
# tests/deploy: a real nginx in front of the hub, openssl for its test certificate, and promtool
# (Debian ships it in the prometheus package) for the alert rules. The package's service is not
# started in a container without systemd; the tests run their own nginx on free ports.
[ -x /usr/sbin/nginx ] || command -v nginx >/dev/null 2>&1 || need+=(nginx)
command -v openssl >/dev/null 2>&1 || need+=(openssl)
command -v promtool >/dev/null 2>&1 || need+=(prometheus)
if [ ${#need[@]} -gt 0 ]; then
  echo "installing system packages: ${need[*]}"
  SUDO=""
  [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}"
fi

[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e '.[dev]'
if [ -f tests/js/package-lock.json ]; then
  (cd tests/js && npm ci --no-audit --no-fund --loglevel=error)
fi
# The npm package @mtbridge/client: its codec, ws, esbuild (the browser copy) and TypeScript (the
# type check), pinned by its lock file; tests/jsclient uses them.
(cd clients/js && npm ci --no-audit --no-fund --loglevel=error)
# The React example (tests/examples): React and Vite from the npm registry, and the client package
# from clients/js, installed as a packed copy (examples/react-dashboard/.npmrc).
if [ -f examples/react-dashboard/package-lock.json ]; then
  (cd examples/react-dashboard && npm ci --no-audit --no-fund --loglevel=error)
fi

.venv/bin/ruff check .
.venv/bin/mypy
set +e
.venv/bin/pytest "$@"
rc=$?
set -e
# pytest's 5 means "no tests collected": a selection that ran nothing is not a pass.
exit $rc
