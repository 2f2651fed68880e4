#!/usr/bin/env bash
# Brings docker-compose.yml up on a real Docker engine, checks the running stack from outside as an operator would,
# and takes it down again (npm run compose:smoke). Prints `N passed, M failed`.
#
#   scripts/compose-smoke.sh             up (building what is missing), checks, down -v
#   scripts/compose-smoke.sh standins    only build the stand-in images that are missing (see below)
#   KEEP=1 scripts/compose-smoke.sh      leave the stack running (project gitspaces-smoke); `down` removes it
#   scripts/compose-smoke.sh down
#
# Needs a running Docker engine. The compose CLI is `docker compose` when installed, else Compose v2 built from the
# Go module proxy into the tools cache. Images docker-compose.yml pins are pulled when a registry serves them;
# where none does (this project's machines), stand-ins are built locally (deploy/compose/standins/README.md):
# Temporal's server, sql tool and UI server from their Go modules, the rest from Debian packages.
#
# Environment: GITSPACES_TOOLS_CACHE (default ${XDG_CACHE_HOME:-$HOME/.cache}/gitspaces-tools), SMOKE_STANDINS=1
# (never pull, always stand-ins), SMOKE_WAIT_SECONDS (default 900).
set -euo pipefail
shopt -s inherit_errexit

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${GITSPACES_TOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/gitspaces-tools}"
STANDINS="$ROOT/deploy/compose/standins"
PROJECT=gitspaces-smoke
COMPOSE_MODULE=github.com/docker/compose/v2
COMPOSE_VERSION=v2.40.3
BASE_IMAGE=gitspaces-standin/debian:bookworm
STATE="$CACHE/compose-smoke"

log() { echo "[compose-smoke] $*" >&2; }
die() {
  log "$*"
  exit 2
}

docker info >/dev/null 2>&1 || die "no Docker engine answers (docker info failed): start one, then run this again"

# The image pins, read from docker-compose.yml itself.
pin() { sed -n "s|^ *image: \($1:[^ ]*\)$|\1|p" "$ROOT/docker-compose.yml" | head -n 1; }
TEMPORAL_SERVER_IMAGE="$(pin temporalio/server)"
TEMPORAL_ADMIN_IMAGE="$(pin temporalio/admin-tools)"
TEMPORAL_UI_IMAGE="$(pin temporalio/ui)"
POSTGRES_IMAGE="$(pin postgres)"
NGINX_IMAGE="$(pin nginx)"
NODE_IMAGE="$(sed -n 's/^ARG NODE_IMAGE=//p' "$ROOT/Dockerfile")"

# --- stand-in images ------------------------------------------------------------------------------------------------
go_module_dir() { # module@version: its source in the module cache
  GOTOOLCHAIN=auto GOFLAGS=-mod=mod go mod download -json "$1" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p'
}

go_tool() { # name module version package: a binary built once into the tools cache
  # The module is copied out of the module cache and built as the main module, so that its own go.mod (exclude and
  # replace directives included) applies, as in its own release build.
  local name="$1" module="$2" version="$3" package="$4" bin src work
  bin="$CACHE/standin-bin/${module//\//_}-$version/$name"
  if [[ ! -x "$bin" ]]; then
    log "building $name ($module@$version, ./$package) from the Go module proxy"
    src="$(go_module_dir "$module@$version")" || return 1
    [[ -d "$src" ]] || { log "go mod download $module@$version gave no directory"; return 1; }
    work="$(mktemp -d)"
    cp -r "$src/." "$work/" && chmod -R u+w "$work" && mkdir -p "$(dirname "$bin")" || return 1
    (cd "$work" && GOTOOLCHAIN=auto CGO_ENABLED=0 GOFLAGS=-mod=mod nice -n 10 go build -trimpath -o "$bin.tmp" "./$package") >&2 ||
      { rm -rf "$work"; return 1; }
    mv "$bin.tmp" "$bin" && rm -rf "$work" || return 1
  fi
  echo "$bin"
}

base_image() {
  docker image inspect "$BASE_IMAGE" >/dev/null 2>&1 && return
  command -v debootstrap >/dev/null || die "debootstrap is needed for the stand-ins' Debian root (apt-get install debootstrap)"
  local mirror rootfs
  # The Debian mirror this machine's apt already uses.
  mirror="$(sed -n 's/^URIs: *\([^ ]*\).*/\1/p' /etc/apt/sources.list.d/*.sources 2>/dev/null | grep -v security | head -n 1)"
  [[ -n "$mirror" ]] || mirror="$(awk '$1 == "deb" && $2 !~ /security/ { print $2; exit }' /etc/apt/sources.list)"
  rootfs="$(mktemp -d)"
  log "debootstrap bookworm from $mirror (a few minutes)"
  debootstrap --variant=minbase bookworm "$rootfs" "$mirror" >"$rootfs.log" 2>&1 || die "debootstrap failed: $rootfs.log"
  tar -C "$rootfs" -c . | docker import -c 'CMD ["bash"]' - "$BASE_IMAGE" >/dev/null
  rm -rf "$rootfs" "$rootfs.log"
}

build_standin() { # image dockerfile context-dir
  log "building the stand-in $1"
  cp "$STANDINS"/*.sh "$3/"
  DOCKER_BUILDKIT=0 docker build -q -t "$1" -f "$STANDINS/$2" "$3" >/dev/null
  rm -rf "$3"
}

standin() { # image
  local image="$1" ctx bin
  ctx="$(mktemp -d)"
  base_image
  case "$image" in
    node:*)
      # The host's node, npm and headers (node-gyp compiles node-pty against them).
      [[ -x /usr/bin/node && -d /usr/lib/node_modules/npm && -d /usr/include/node ]] ||
        die "the node stand-in takes the host's Node.js from /usr (node, npm, headers): not found"
      tar -c -f "$ctx/nodejs.tar" -C / usr/bin/node usr/bin/npm usr/bin/npx usr/lib/node_modules/npm usr/include/node
      cat /usr/local/share/ca-certificates/*.crt >"$ctx/extra-ca.crt" 2>/dev/null || true
      build_standin "$image" node.Dockerfile "$ctx"
      ;;
    postgres:*) build_standin "$image" postgres.Dockerfile "$ctx" ;;
    nginx:*) build_standin "$image" nginx.Dockerfile "$ctx" ;;
    temporalio/server:*)
      bin="$(go_tool temporal-server go.temporal.io/server "v${image##*:}" cmd/server)" || die "temporal-server did not build"
      cp "$bin" "$ctx/temporal-server"
      build_standin "$image" temporal-server.Dockerfile "$ctx"
      ;;
    temporalio/admin-tools:*)
      bin="$(go_tool temporal-sql-tool go.temporal.io/server "v${image##*:}" cmd/tools/sql)" ||
        die "temporal-sql-tool did not build"
      cp "$bin" "$ctx/temporal-sql-tool"
      cp -r "$(go_module_dir "go.temporal.io/server@v${image##*:}")/schema" "$ctx/schema"
      chmod -R u+w,a+rX "$ctx/schema"
      # The Temporal CLI binary itself, not a wrapper script (a pyenv shim, say): where .ci/run installs it first.
      local cli="" candidate
      for candidate in "${TEMPORAL_CLI_PATH:-}" "$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))' \
        2>/dev/null)/temporal" "$(command -v temporal || true)" "$ROOT"/.tools/*/temporal; do
        [[ -f "$candidate" ]] || continue
        candidate="$(readlink -f "$candidate")"
        if [[ "$(head -c 4 "$candidate" | od -An -c | tr -d ' ')" == '177ELF' ]]; then
          cli="$candidate"
          break
        fi
      done
      [[ -n "$cli" ]] || die "the admin-tools stand-in needs the Temporal CLI binary (TEMPORAL_CLI_PATH)"
      cp "$cli" "$ctx/temporal"
      build_standin "$image" temporal-admin-tools.Dockerfile "$ctx"
      ;;
    temporalio/ui:*)
      # The module proxy does not serve every dependency of every ui-server release (v2.58.1 needs a go.temporal.io/api
      # version it refuses): then the stand-in is built from UI_STANDIN_FALLBACK, and says so.
      local ui="v${image##*:}"
      if ! bin="$(go_tool ui-server github.com/temporalio/ui-server/v2 "$ui" cmd/server)"; then
        ui="${UI_STANDIN_FALLBACK:-v2.56.4}"
        log "ui-server v${image##*:} does not build from the module proxy; the $image stand-in is ui-server $ui"
        bin="$(go_tool ui-server github.com/temporalio/ui-server/v2 "$ui" cmd/server)" || die "ui-server did not build"
      fi
      cp "$bin" "$ctx/ui-server"
      cp "$(go_module_dir "github.com/temporalio/ui-server/v2@$ui")/config/docker.yaml" "$ctx/docker.yaml"
      build_standin "$image" temporal-ui.Dockerfile "$ctx"
      ;;
    *) die "no stand-in for $image, and it cannot be pulled" ;;
  esac
}

USED_STANDINS=()
ensure_image() { # image
  local image="$1"
  if docker image inspect "$image" >/dev/null 2>&1; then
    docker image inspect -f '{{ index .Config.Labels "org.gitspaces.standin" }}' "$image" 2>/dev/null | grep -q . &&
      USED_STANDINS+=("$image")
    return 0
  fi
  if [[ "${SMOKE_STANDINS:-}" != 1 ]] && timeout 120 docker pull -q "$image" >/dev/null 2>&1; then return 0; fi
  standin "$image"
  USED_STANDINS+=("$image")
}

ensure_images() {
  for image in "$NODE_IMAGE" "$POSTGRES_IMAGE" "$NGINX_IMAGE" "$TEMPORAL_SERVER_IMAGE" "$TEMPORAL_ADMIN_IMAGE" \
    "$TEMPORAL_UI_IMAGE"; do
    ensure_image "$image"
  done
}

# --- the compose CLI ------------------------------------------------------------------------------------------------
compose_cli() {
  if docker compose version >/dev/null 2>&1; then
    COMPOSE=(docker compose)
  else
    bin="$CACHE/docker-compose-$COMPOSE_VERSION/docker-compose"
    if [[ ! -x "$bin" ]]; then
      log "building Docker Compose $COMPOSE_VERSION from the Go module proxy into $bin"
      # Its go.mod has exclude directives: built as the main module from a copy of its source.
      src="$(GOFLAGS=-mod=mod go mod download -json "$COMPOSE_MODULE@$COMPOSE_VERSION" |
        sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')"
      work="$(mktemp -d)"
      cp -r "$src/." "$work/"
      chmod -R u+w "$work"
      mkdir -p "$(dirname "$bin")"
      (cd "$work" && GOTOOLCHAIN=auto CGO_ENABLED=0 GOFLAGS=-mod=mod nice -n 10 go build -trimpath -o "$bin.tmp" ./cmd)
      mv "$bin.tmp" "$bin"
      rm -rf "$work"
    fi
    COMPOSE=("$bin")
  fi
}

compose() { "${COMPOSE[@]}" -p "$PROJECT" --project-directory "$ROOT" -f "$ROOT/docker-compose.yml" --env-file "$STATE/.env" "$@"; }

case "${1:-run}" in
  standins)
    ensure_images
    log "images ready (stand-ins: ${USED_STANDINS[*]:-none})"
    exit 0
    ;;
  down)
    compose_cli
    [[ -f "$STATE/.env" ]] && compose down -v --remove-orphans
    exit 0
    ;;
  run) ;;
  *) die "usage: $0 [run|standins|down]" ;;
esac

ensure_images
compose_cli

# --- the stack ------------------------------------------------------------------------------------------------------
free_port() { node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'; }
mkdir -p "$STATE"
chmod 700 "$STATE"
API_PORT="$(free_port)" GW_PORT="$(free_port)" UI_PORT="$(free_port)" CODEC_PORT="$(free_port)"
{
  "$ROOT/scripts/compose-env.sh"
  # Loopback only: the smoke test publishes nothing beyond this machine, the gateway included.
  echo "GITSPACES_GATEWAY_PUBLISH=127.0.0.1:$GW_PORT"
  echo "GITSPACES_PUBLIC_GATEWAY_URL=http://127.0.0.1:$GW_PORT"
  echo "GITSPACES_API_LOOPBACK_PORT=$API_PORT"
  echo "GITSPACES_TEMPORAL_UI_LOOPBACK_PORT=$UI_PORT"
  echo "GITSPACES_CODEC_LOOPBACK_PORT=$CODEC_PORT"
  echo "GITSPACES_TEMPORAL_UI_ORIGIN=http://127.0.0.1:$UI_PORT"
  echo "GITSPACES_CODEC_PUBLIC_URL=http://127.0.0.1:$CODEC_PORT"
} >"$STATE/.env"
chmod 600 "$STATE/.env"
ADMIN_TOKEN="$(sed -n 's/^GITSPACES_ADMIN_TOKEN=//p' "$STATE/.env")"

log "compose-check on the generated .env"
"$ROOT/scripts/compose-check.sh" -f "$ROOT/docker-compose.yml" --env-file "$STATE/.env" >/dev/null

cleanup() {
  if [[ "${KEEP:-}" == 1 ]]; then
    log "left running: ${COMPOSE[*]} -p $PROJECT --env-file $STATE/.env ps   (scripts/compose-smoke.sh down)"
  else
    compose down -v --remove-orphans >/dev/null 2>&1 || true
  fi
}
trap cleanup EXIT

log "building the Gitspaces image (Dockerfile)"
DOCKER_BUILDKIT=0 docker build -q -t "gitspaces:local" "$ROOT" >/dev/null
log "up (waiting for every health check and job, at most ${SMOKE_WAIT_SECONDS:-900} s)"
up_status=0
compose up -d --no-build --wait --wait-timeout "${SMOKE_WAIT_SECONDS:-900}" || up_status=$?

# --- checks ---------------------------------------------------------------------------------------------------------
passed=0
failed=0
ok() {
  passed=$((passed + 1))
  echo "PASS $*"
}
ko() {
  failed=$((failed + 1))
  echo "FAIL $*"
}
expect() { # description command...
  local what="$1"
  shift
  if out="$("$@" 2>&1)"; then ok "$what"; else ko "$what: ${out:0:400}"; fi
}
http_status() { node -e 'fetch(process.argv[1],{headers:process.argv[2]?{authorization:`Bearer ${process.argv[2]}`}:{},method:process.argv[3]||"GET"}).then(r=>console.log(r.status),e=>console.log(`error ${e.cause?.code??e.message}`))' "$@"; }
expect_status() { # description want url [token] [method]
  local got
  got="$(http_status "${@:3}")"
  if [[ "$got" == "$2" ]]; then ok "$1"; else ko "$1: got $got, want $2"; fi
}
in_service() { compose exec -T "$@"; }

[[ "$up_status" == 0 ]] && ok "docker compose up --wait: every service healthy, every job completed" ||
  ko "docker compose up --wait exited $up_status: $(compose ps -a --format '{{.Service}} {{.State}} {{.Health}} {{.ExitCode}}' | tr '\n' ';')"

for job in temporal-schema temporal-namespace temporal-search-attributes; do
  code="$(compose ps -a --format '{{.Service}} {{.ExitCode}}' | awk -v s="$job" '$1 == s { print $2 }')"
  [[ "$code" == 0 ]] && ok "job $job completed" || ko "job $job: exit ${code:-missing}; $(compose logs --tail 20 "$job" 2>&1 | tr '\n' ' ' | cut -c1-400)"
done

expect_status "the API's one port (nginx, both replicas) is ready on 127.0.0.1:$API_PORT" 200 "http://127.0.0.1:$API_PORT/readyz"
expect_status "the admin token from .env opens the API through the proxy" 200 "http://127.0.0.1:$API_PORT/api/v1/infrastructures" "$ADMIN_TOKEN"
expect_status "a wrong token is refused" 401 "http://127.0.0.1:$API_PORT/api/v1/infrastructures" "not-the-token"
expect_status "the gateway answers on its published port" 200 "http://127.0.0.1:$GW_PORT/healthz"
expect_status "the Temporal Web UI answers on loopback" 200 "http://127.0.0.1:$UI_PORT/healthz"
expect_status "the Web UI's server reaches Temporal (its namespaces API)" 200 "http://127.0.0.1:$UI_PORT/api/v1/namespaces"
expect_status "the codec server wants its token" 401 "http://127.0.0.1:$CODEC_PORT/decode" "" POST

same_keys='Promise.all(["api-1","api-2"].map(h=>fetch(`http://${h}:3000/api/v1/.well-known/jwks.json`).then(r=>r.json()))).then(([a,b])=>{if(JSON.stringify(a)!==JSON.stringify(b)||!a.keys.length){console.error(JSON.stringify([a,b]));process.exit(1)}})'
expect "both API replicas publish the same access-token key (the gateway accepts either's tokens)" in_service gateway node -e "$same_keys"

published="$(docker ps --filter "label=com.docker.compose.project=$PROJECT" \
  --format '{{.Label "com.docker.compose.service"}} {{.Ports}}' | awk '$2 != "" { print $1 }' | sort | tr '\n' ' ')"
beyond_loopback="$(docker ps --filter "label=com.docker.compose.project=$PROJECT" --format '{{.Ports}}' |
  tr ',' '\n' | grep -- '->' | grep -v '127.0.0.1:' || true)"
if [[ "$published" == "api codec-server gateway temporal-ui " && -z "$beyond_loopback" ]]; then
  ok "published: only the gateway, the API's proxy, the UI and the codec server (Temporal, PostgreSQL, replicas: none)"
else
  ko "published services: $published; beyond loopback: $beyond_loopback"
fi

for service in api-1 api-2 gateway codec-server; do
  uid="$(in_service "$service" id -u 2>&1 || true)"
  [[ "$uid" == 1000 ]] && ok "$service runs as the node user (uid 1000)" || ko "$service runs as uid '$uid'"
done

tcp='const s=require("net").connect(+process.argv[2],process.argv[1]);s.on("connect",()=>{console.log("open");process.exit(0)});s.on("error",e=>{console.log(e.code);process.exit(0)});setTimeout(()=>{console.log("timeout");process.exit(0)},3000)'
reach="$(in_service runner node -e "$tcp" postgresql 5432 2>&1 || true)"
case "$reach" in
  ENOTFOUND | EAI_AGAIN | ECONNREFUSED | EHOSTUNREACH | ENETUNREACH | timeout)
    ok "a gitspace (the runner's network namespace) cannot reach PostgreSQL ($reach)" ;;
  *) ko "the runner's network namespace and PostgreSQL: $reach" ;;
esac
reach="$(in_service runner node -e "$tcp" temporal 7233 2>&1 || true)"
[[ "$reach" == open ]] && ok "the runner reaches Temporal" || ko "the runner cannot reach Temporal ($reach)"

attrs="$(compose run --rm --no-deps -T --entrypoint temporal temporal-namespace operator search-attribute list \
  --namespace gitspaces 2>&1 || true)"
missing=""
for a in GitspaceId GitspaceAction InfrastructureId GitspaceProvider; do grep -qw "$a" <<<"$attrs" || missing+=" $a"; done
[[ -z "$missing" ]] && ok "the search attributes are registered in the gitspaces namespace" ||
  ko "search attributes missing:$missing"

compose stop api-1 >/dev/null 2>&1
all=200
for _ in 1 2 3 4 5 6; do
  got="$(http_status "http://127.0.0.1:$API_PORT/api/v1/infrastructures" "$ADMIN_TOKEN")"
  [[ "$got" == 200 ]] || all="$got"
done
[[ "$all" == 200 ]] && ok "with api-1 stopped, the API's port still answers (api-2)" || ko "with api-1 stopped the proxy answered $all"
compose start api-1 >/dev/null 2>&1 || true

if [[ ${#USED_STANDINS[@]} -gt 0 ]]; then log "stand-in images: ${USED_STANDINS[*]}"; fi
echo "compose-smoke: $passed passed, $failed failed"
[[ "$failed" == 0 ]]
