#!/usr/bin/env bash
# Run a command in a private network namespace with only loopback up, when we are root and
# the kernel allows it: servers the tests start (Qdrant, Ray, uvicorn, Chromium) then bind
# and talk over 127.0.0.1 alone (Ray otherwise binds the machine's own address). Elsewhere
# the command runs as it is.
set -euo pipefail
if [ "$(id -u)" = 0 ] && command -v unshare >/dev/null && command -v ip >/dev/null \
   && unshare -n true 2>/dev/null; then
  exec unshare -n -- bash -c 'ip link set lo up && exec "$@"' bash "$@"
fi
exec "$@"
