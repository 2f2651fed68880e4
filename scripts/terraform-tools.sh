#!/usr/bin/env bash
# OpenTofu and the hashicorp google/aws providers, built from the Go module proxy and cached outside the
# clone (a user-level cache keyed by version), plus a CLI config whose filesystem_mirror makes `tofu init`
# install providers from that cache and never download.
#
#   scripts/terraform-tools.sh build [tofu|google|aws|all]   build what is missing (reuses the cache)
#   scripts/terraform-tools.sh status                        what is cached, what is missing
#   scripts/terraform-tools.sh env                           print exports (PATH, TF_CLI_CONFIG_FILE)
#   scripts/terraform-tools.sh test [--only NAME,...]        the Terraform checks (npm run test:terraform)
#
# Environment:
#   GITSPACES_TOOLS_CACHE   cache root (default ${XDG_CACHE_HOME:-$HOME/.cache}/gitspaces-tools)
#   TOFU_PATH               use this tofu binary instead of the cached build
#   TF_BUILD_NICE           niceness of the Go builds (default 19)
#   TF_TEST_REQUIRE_ALL=1   a check that cannot run because a tool is missing fails instead of skipping
set -euo pipefail

# --- pinned versions -----------------------------------------------------------------------------------
TOFU_MODULE=github.com/opentofu/opentofu
TOFU_VERSION=1.12.6
# The provider release tags are not served by the module proxy (they are not Go-module versions); commit
# pseudo-versions are. Each is installed into the mirror under the label of the release it follows (see
# the CHANGELOG.md at that commit), so ordinary version constraints match; the commit is recorded beside.
GOOGLE_MODULE=github.com/hashicorp/terraform-provider-google
GOOGLE_PSEUDO=v1.20.1-0.20260828184646-f3721fb45fa3 # two days after the 8.0.0 release
GOOGLE_VERSION=8.0.0
AWS_MODULE=github.com/hashicorp/terraform-provider-aws
AWS_PSEUDO=v1.60.1-0.20260602190131-5f2286d6d836 # after 6.47.0, before 6.48.0
AWS_VERSION=6.47.0

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${GITSPACES_TOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/gitspaces-tools}"
PLATFORM=linux_amd64
TOFU_DIR="$CACHE/tofu-$TOFU_VERSION"
MIRROR="$CACHE/provider-mirror"
CLI_CONFIG="$CACHE/tofu-cli-$TOFU_VERSION.tfrc"
NICE="${TF_BUILD_NICE:-19}"

provider_dir() { # name version
  echo "$MIRROR/registry.opentofu.org/hashicorp/$1/$2/$PLATFORM"
}
provider_bin() { # name version
  echo "$(provider_dir "$1" "$2")/terraform-provider-$1_v$2"
}
tofu_bin() {
  if [[ -n "${TOFU_PATH:-}" ]]; then echo "$TOFU_PATH"; else echo "$TOFU_DIR/tofu"; fi
}

log() { echo "[terraform-tools] $*" >&2; }

write_cli_config() {
  mkdir -p "$CACHE"
  local tmp
  tmp="$(mktemp "$CACHE/.tfrc.XXXXXX")"
  cat >"$tmp" <<EOF
# Written by scripts/terraform-tools.sh: providers come only from the local mirror, never from a registry.
provider_installation {
  filesystem_mirror {
    path    = "$MIRROR"
    include = ["registry.opentofu.org/hashicorp/*", "registry.terraform.io/hashicorp/*"]
  }
  direct {
    exclude = ["*/*/*"]
  }
}
EOF
  mv "$tmp" "$CLI_CONFIG"
}

# go_build MODULE@VERSION OUTPUT PACKAGE [LDFLAGS]: copy the module out of the module cache (so its own
# go.mod, with any replace directives, is the main module) and build PACKAGE from it.
go_build() {
  local modver="$1" out="$2" pkg="$3" ldflags="${4:-}"
  local src work
  src="$(go mod download -json "$modver" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')"
  [[ -d "$src" ]] || { log "go mod download $modver gave no directory"; return 1; }
  work="$(mktemp -d "${TMPDIR:-/tmp}/gitspaces-gobuild.XXXXXX")"
  cp -r "$src/." "$work/"
  chmod -R u+w "$work"
  mkdir -p "$(dirname "$out")"
  log "building $modver ($pkg) in $work"
  local start=$SECONDS
  (cd "$work" && nice -n "$NICE" go build -trimpath -ldflags "-s -w $ldflags" -o "$out.tmp.$$" "$pkg")
  mv "$out.tmp.$$" "$out"
  rm -rf "$work"
  log "built $out in $((SECONDS - start)) s"
  echo "$modver built in $((SECONDS - start)) s on $(date -u +%FT%TZ) with $(go env GOVERSION)" >"$out.built"
}

with_lock() { # name command...
  mkdir -p "$CACHE"
  local name="$1"
  shift
  (
    flock 9
    "$@"
  ) 9>"$CACHE/.lock-$name"
}

build_tofu() {
  local bin="$TOFU_DIR/tofu"
  if [[ -x "$bin" ]]; then log "tofu $TOFU_VERSION cached at $bin"; return 0; fi
  go_build "$TOFU_MODULE@v$TOFU_VERSION" "$bin" ./cmd/tofu "-X github.com/opentofu/opentofu/version.dev=no"
}

build_provider() { # name
  local name="$1" module pseudo version
  case "$name" in
    google) module=$GOOGLE_MODULE pseudo=$GOOGLE_PSEUDO version=$GOOGLE_VERSION ;;
    aws) module=$AWS_MODULE pseudo=$AWS_PSEUDO version=$AWS_VERSION ;;
    *) log "unknown provider $name"; return 2 ;;
  esac
  local bin
  bin="$(provider_bin "$name" "$version")"
  if [[ -x "$bin" ]]; then log "provider $name $version cached at $bin"; return 0; fi
  go_build "$module@$pseudo" "$bin" . "-X $module/version.ProviderVersion=$version"
  echo "$module@$pseudo" >"$(provider_dir "$name" "$version")/SOURCE"
}

cmd_build() {
  local what="${1:-all}"
  write_cli_config
  case "$what" in
    tofu) with_lock tofu build_tofu ;;
    google | aws) with_lock "$what" build_provider "$what" ;;
    all)
      with_lock tofu build_tofu
      with_lock google build_provider google
      with_lock aws build_provider aws
      ;;
    *) log "build what? tofu|google|aws|all"; return 2 ;;
  esac
}

cmd_status() {
  local b
  for b in "$(tofu_bin)" "$(provider_bin google $GOOGLE_VERSION)" "$(provider_bin aws $AWS_VERSION)"; do
    if [[ -x "$b" ]]; then echo "cached   $b"; else echo "missing  $b"; fi
  done
  echo "cli config: $CLI_CONFIG"
}

cmd_env() {
  write_cli_config
  echo "export TF_CLI_CONFIG_FILE='$CLI_CONFIG'"
  echo "export PATH='$(dirname "$(tofu_bin)")':\"\$PATH\""
}

main() {
  local cmd="${1:-status}"
  shift || true
  case "$cmd" in
    build) cmd_build "$@" ;;
    status) cmd_status ;;
    env) cmd_env ;;
    test) source "$ROOT/scripts/terraform-test.sh"; tf_test_main "$@" ;;
    *) log "usage: $0 build|status|env|test"; return 2 ;;
  esac
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then main "$@"; fi
