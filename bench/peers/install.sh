#!/usr/bin/env bash
# Install what the peer servers of `mtbridge bench --peers` need:
#   - Node packages (ws, socket.io, uWebSockets.js) into bench/peers/node_modules, from the
#     committed package-lock.json;
#   - python-socketio into the project's virtualenv (.venv), or the interpreter in $PYTHON.
# The C load generator needs only gcc, which `mtbridge bench` calls itself.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
python="${PYTHON:-$root/.venv/bin/python}"

command -v node >/dev/null || { echo "install.sh: node is required (Debian: apt-get install nodejs npm)" >&2; exit 1; }
command -v npm >/dev/null || { echo "install.sh: npm is required (Debian: apt-get install npm)" >&2; exit 1; }

# --ignore-scripts: no package here needs an install script (uWebSockets.js ships prebuilt
# binaries inside its registry tarball), and none should run one.
(cd "$here" && npm ci --no-audit --no-fund --ignore-scripts)
"$python" -m pip install --quiet "python-socketio>=5.11"

# Fail now rather than in the middle of a benchmark run.
(cd "$here" && node -e "const u=require('@trufflesuite/uws-js-unofficial'); if (typeof u.H3App !== 'function') process.exit(1)") \
  || { echo "install.sh: the native uWebSockets.js binary does not load on this Node.js" >&2; exit 1; }
"$python" -c "import socketio, uvicorn" 
echo "bench peers installed"
