#!/usr/bin/env bash
# Install Debian's Chromium for the browser tests when we are root and it is missing.
# Elsewhere those tests are skipped with the reason (tests/web/conftest.py).
set -uo pipefail
if [ -x /usr/bin/chromium ]; then exit 0; fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
  echo "install_browser: no /usr/bin/chromium and not root with apt-get; browser tests will be skipped" >&2
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null && apt-get install -y -qq --no-install-recommends chromium >/dev/null \
  || echo "install_browser: apt-get could not install chromium; browser tests will be skipped" >&2
exit 0
