#!/usr/bin/env bash
# Checks docker-compose.yml as `docker compose config` loads it, plus the production rules (tools/compose-check).
# The checker is built from the Go module proxy once and cached outside the clone, keyed by a hash of its go.mod,
# go.sum and source and of the Go version, so CI and later runs reuse it.
#
#   scripts/compose-check.sh                     check docker-compose.yml with .env.example (npm run compose:check)
#   scripts/compose-check.sh [ARGS...]           run the checker with these arguments (-f, --env-file, --example, --json)
#   scripts/compose-check.sh path                build when missing, print the binary's path
#
# Environment: GITSPACES_TOOLS_CACHE  cache root (default ${XDG_CACHE_HOME:-$HOME/.cache}/gitspaces-tools)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SRC="$ROOT/tools/compose-check"
CACHE="${GITSPACES_TOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/gitspaces-tools}"

log() { echo "[compose-check] $*" >&2; }

command -v go >/dev/null || { log "go is not installed: the checker is built from source (tools/compose-check)"; exit 2; }
key="$( (cat "$SRC/go.mod" "$SRC/go.sum" "$SRC"/*.go; go env GOVERSION) | sha256sum | cut -c1-16)"
BIN="$CACHE/compose-check-$key/compose-check"

if [[ ! -x "$BIN" ]]; then
  log "building tools/compose-check into $BIN (first run only)"
  mkdir -p "$(dirname "$BIN")"
  tmp="$(mktemp "$(dirname "$BIN")/.build.XXXXXX")"
  (cd "$SRC" && GOFLAGS="${GOFLAGS:+$GOFLAGS }-mod=mod" nice -n "${COMPOSE_CHECK_BUILD_NICE:-10}" go build -trimpath -o "$tmp" .)
  mv "$tmp" "$BIN"
fi

if [[ "${1:-}" == "path" ]]; then
  echo "$BIN"
  exit 0
fi
cd "$ROOT"
if [[ $# -eq 0 ]]; then
  set -- -f docker-compose.yml --env-file .env.example --example
fi
exec "$BIN" "$@"
