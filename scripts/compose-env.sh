#!/usr/bin/env bash
# Writes a complete .env for docker-compose.yml to standard output, with every secret freshly generated (openssl and
# coreutils only; no Node, no checkout needed beyond .env.example):
#
#   (umask 077; scripts/compose-env.sh > .env)
#
# Every setting that is not a secret keeps the value .env.example gives it.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
EXAMPLE="${COMPOSE_ENV_EXAMPLE:-$ROOT/.env.example}"
command -v openssl >/dev/null || { echo "compose-env: openssl is required" >&2; exit 1; }

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
chmod 700 "$work"

hex() { openssl rand -hex "$1"; }
b64url() { basenc --base64url -w0 | tr -d '='; }

openssl genpkey -algorithm ed25519 -out "$work/access.pem" 2>/dev/null
openssl genpkey -algorithm ed25519 -out "$work/work-order.pem" 2>/dev/null
openssl pkey -in "$work/work-order.pem" -pubout -out "$work/work-order.pub" 2>/dev/null
# The runner key ring: the raw 32 bytes of an X25519 key, the last 32 bytes of its DER forms (common/sealed-secret.ts).
openssl genpkey -algorithm x25519 -out "$work/runner.pem" 2>/dev/null
runner_private="x25519-private:$(openssl pkey -in "$work/runner.pem" -outform DER | tail -c 32 | b64url)"
runner_public="x25519:$(openssl pkey -in "$work/runner.pem" -pubout -outform DER | tail -c 32 | b64url)"

declare -A value=(
  [POSTGRES_PASSWORD]="$(hex 24)"
  [GITSPACES_DB_PASSWORD]="$(hex 24)"
  [TEMPORAL_DB_PASSWORD]="$(hex 24)"
  [GITSPACES_PAYLOAD_KEYS]="k$(date -u +%Y%m%d):$(openssl rand -base64 32)"
  [GITSPACES_ADMIN_TOKEN]="$(hex 32)"
  [GITSPACES_ACCESS_TOKEN_KEY]="\"$(cat "$work/access.pem")\""
  [GITSPACES_WORK_ORDER_KEY]="\"$(cat "$work/work-order.pem")\""
  [GITSPACES_WORK_ORDER_PUBLIC_KEY]="\"$(cat "$work/work-order.pub")\""
  [GITSPACES_RUNNER_KEYS]="$runner_private"
  [GITSPACES_RUNNER_PUBLIC_KEYS]="$runner_public"
  [GITSPACES_GATEWAY_ADMIN_TOKEN]="$(hex 32)"
  [GITSPACES_CODEC_TOKEN]="$(hex 32)"
  [GITSPACES_SESSION_KEY]="$(openssl rand -base64 32)"
)

echo "# Written by scripts/compose-env.sh on $(date -u +%Y-%m-%dT%H:%M:%SZ). Secrets: keep this file at mode 0600."
while IFS= read -r line; do
  name="${line%%=*}"
  if [[ "$line" =~ ^[A-Z0-9_]+=$ && -n "${value[$name]:-}" ]]; then
    printf '%s=%s\n' "$name" "${value[$name]}"
    unset "value[$name]"
  else
    printf '%s\n' "$line"
  fi
done <"$EXAMPLE"

# A secret this script generates but .env.example does not list (or lists with a value) is a mistake in one of them.
if [[ ${#value[@]} -gt 0 ]]; then
  echo "compose-env: $EXAMPLE has no blank line for: ${!value[*]}" >&2
  exit 1
fi
