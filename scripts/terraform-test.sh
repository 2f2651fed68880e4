# The Terraform/OpenTofu checks of deploy/terraform (npm run test:terraform). Sourced by scripts/terraform-tools.sh,
# which defines the tool locations and builds; run it as `scripts/terraform-tools.sh test [--only a,b]`.
#
# Checks (each PASS, FAIL or SKIP; the last line is `N passed, M failed, K skipped`; exit 1 when any failed):
#   fmt              tofu fmt -check over deploy/terraform
#   validate-gcp/aws tofu init (providers from the local mirror only) + tofu validate against the real schemas
#   test-gcp/aws     tofu test: mock providers, assertions on firewall rules, IAM bindings, outputs
#   config-gcp/aws   the module's infrastructure_request output, validated by the API's own schemas
#   checkov-gcp/aws  checkov over the module: every failed check is fixed or skipped in place with a reason
#   moto-aws         the AWS module applied against moto on 127.0.0.1: apply, a second plan with no changes, destroy
#
# Environment:
#   TF_TEST_BUILD        what to build when missing: all (default), none, or a list such as tofu,google
#   TF_TEST_REQUIRE_ALL  1: a check whose tool is missing fails instead of being skipped
#   CHECKOV_VERSION      checkov from PyPI, installed into a venv in the cache when missing (default 3.3.30)
#   MOTO_SERVER          command that runs moto's server (default: python3 -m moto.server)
#   TF_TEST_KEEP=1       keep the work dir (each check's log, the module copies) and say where

CHECKOV_VERSION="${CHECKOV_VERSION:-3.3.30}"
CHECKOV_VENV="$CACHE/checkov-$CHECKOV_VERSION"
ALL_CHECKS=(fmt validate-gcp validate-aws test-gcp test-aws config-gcp config-aws checkov-gcp checkov-aws moto-aws)

tf_have() { # tofu|google|aws|checkov|moto
  case "$1" in
    tofu) [[ -x "$(tofu_bin)" ]] ;;
    google) [[ -x "$(provider_bin google "$GOOGLE_VERSION")" ]] ;;
    aws) [[ -x "$(provider_bin aws "$AWS_VERSION")" ]] ;;
    checkov) [[ -f "$CHECKOV_VENV/.complete" && -x "$CHECKOV_VENV/bin/checkov" ]] ;;
    moto) python3 -c 'import moto.server, boto3' 2>/dev/null && command -v bwrap >/dev/null ;;
  esac
}

tf_wants_build() { # name
  local build="${TF_TEST_BUILD:-all}"
  [[ "$build" == all || ",$build," == *",$1,"* ]]
}

tf_ensure_tools() {
  local t
  for t in tofu google aws; do
    if ! tf_have "$t" && tf_wants_build "$t"; then
      log "building $t (missing from $CACHE)"
      cmd_build "$t" || log "building $t failed"
    fi
  done
  if ! tf_have checkov && tf_wants_build checkov; then
    log "installing checkov $CHECKOV_VERSION from PyPI into $CHECKOV_VENV"
    rm -rf "$CHECKOV_VENV"
    if python3 -m venv "$CHECKOV_VENV" && nice -n "$NICE" "$CHECKOV_VENV/bin/pip" install -q "checkov==$CHECKOV_VERSION"; then
      touch "$CHECKOV_VENV/.complete"
    else
      log "installing checkov failed"
    fi
  fi
}

# --- helpers used by the checks -----------------------------------------------------------------------------

tf() { "$(tofu_bin)" "$@"; }

# A copy of a module in the work dir, initialised from the mirror (once per run).
tf_module() { # gcp|aws -> prints the directory
  local module="$1" dir="$TF_WORK/$1"
  if [[ ! -f "$dir/.initialised" ]]; then
    rm -rf "$dir"
    cp -r "$ROOT/deploy/terraform/$module" "$dir"
    rm -rf "$dir/.terraform" "$dir/.terraform.lock.hcl" "$dir"/terraform.tfstate*
    tf -chdir="$dir" init -backend=false -input=false -no-color >&2 || return 1
    touch "$dir/.initialised"
  fi
  echo "$dir"
}

check_fmt() {
  tf fmt -check -recursive -diff -no-color "$ROOT/deploy/terraform"
}

check_validate() { # module
  local dir
  dir="$(tf_module "$1")" || return 1
  tf -chdir="$dir" validate -no-color
}

# tofu test's machine-readable log (with the state of each run, for check_config), run once per module.
tf_test_json() { # module -> the log file
  local module="$1" dir log="$TF_WORK/$1-test.json"
  if [[ ! -f "$log.rc" ]]; then
    dir="$(tf_module "$module")" || return 1
    local rc=0
    tf -chdir="$dir" test -no-color -json -verbose >"$log" 2>&1 || rc=$?
    echo "$rc" >"$log.rc"
  fi
  echo "$log"
}

check_test() { # module
  local log
  log="$(tf_test_json "$1")" || return 1
  # The human lines of the log: each run's result, each failed assertion or error, the summary.
  python3 - "$log" <<'PYTHON'
import json, sys
for line in open(sys.argv[1]):
    try:
        message = json.loads(line)
    except ValueError:
        print(line.rstrip())
        continue
    kind = message.get("type")
    if kind in ("test_run", "test_file", "test_summary"):
        print(message["@message"])
    elif kind == "diagnostic":
        d = message["diagnostic"]
        print(f"  {d['severity']}: {d['summary']}: {d.get('detail', '')}")
        if d.get("snippet"):
            print(f"    at {d['range']['filename']}:{d['range']['start']['line']}: {d['snippet']['code'].strip()}")
PYTHON
  return "$(cat "$log.rc")"
}

# The infrastructure_request output of the `outputs` run of tests/module.tftest.hcl (mock providers with realistic
# ids), read from `tofu test -json -verbose`, validated by the API's schemas.
check_config() { # module
  local module="$1" log
  log="$(tf_test_json "$module")" || return 1
  [[ "$(cat "$log.rc")" == 0 ]] || { echo "tofu test failed (see test-$module)"; return 1; }
  mkdir -p "$TF_WORK/$module-scripts"
  python3 - "$log" "$TF_WORK/$module-scripts" >"$TF_WORK/$module-request.json" <<'PYTHON' || return 1
import json, sys
found = None
for line in open(sys.argv[1]):
    try:
        message = json.loads(line)
    except ValueError:
        continue
    state = message.get("test_state")
    if message.get("@testrun") != "outputs" or not state:
        continue
    outputs = state.get("values", {}).get("outputs", {})
    if "infrastructure_request" in outputs:
        found = outputs["infrastructure_request"]["value"]
    # The rendered startup scripts of the gateway and runner VMs, for a syntax check below (named by the role: the
    # instance key of google_compute_instance.this, the resource name of aws_instance.gateway and .runner).
    for resource in state.get("values", {}).get("root_module", {}).get("resources", []):
        script = resource.get("values", {}).get("metadata_startup_script") or resource.get("values", {}).get("user_data")
        if resource["type"] in ("google_compute_instance", "aws_instance") and script:
            with open(f"{sys.argv[2]}/startup-{resource.get('index', resource['name'])}.sh", "w") as out:
                out.write(script)
if found is None:
    sys.exit("no infrastructure_request output in the state of the 'outputs' run")
json.dump(found, sys.stdout, indent=2)
PYTHON
  cat "$TF_WORK/$module-request.json"
  echo
  local script scripts=0
  for script in "$TF_WORK/$module"-scripts/startup-*.sh; do
    [[ -f "$script" ]] || continue
    bash -n "$script" || return 1
    sed -n '/^python3 - <<.PYTHON.$/,/^PYTHON$/p' "$script" | sed '1d;$d' >"${script%.sh}.py"
    python3 -m py_compile "${script%.sh}.py" || return 1
    echo "startup script $(basename "$script"): bash and its python part parse"
    scripts=$((scripts + 1))
  done
  [[ $scripts -eq 2 ]] || { echo "expected the gateway's and the runner's startup scripts, found $scripts"; return 1; }
  (cd "$ROOT" && npx --no-install tsx scripts/terraform-check-config.ts "$module" <"$TF_WORK/$module-request.json")
}

check_checkov() { # module
  local dir="$TF_WORK/checkov-$1"
  rm -rf "$dir"
  cp -r "$ROOT/deploy/terraform/$1" "$dir"
  rm -rf "$dir/.terraform"
  # --skip-download: no platform, no external modules; the policies are the ones the package ships.
  BC_SKIP_MAPPING=TRUE CHECKOV_RUN_SCA_PACKAGE_SCAN_V2=false "$CHECKOV_VENV/bin/checkov" \
    --directory "$dir" --framework terraform --skip-download --compact --quiet --output cli
}

moto_free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

check_moto() {
  local dir port moto_pid rc=0
  dir="$(tf_module aws)" || return 1
  port="$(moto_free_port)"
  # moto issues ACM certificates at once instead of after a minute.
  MOTO_ACM_VALIDATION_WAIT=0 ${MOTO_SERVER:-python3 -m moto.server} -H 127.0.0.1 -p "$port" >"$TF_WORK/moto.log" 2>&1 &
  moto_pid=$!
  TF_BACKGROUND_PIDS+=("$moto_pid")
  local endpoint="http://127.0.0.1:$port"
  local i
  for i in $(seq 1 100); do
    curl -fsS "$endpoint/moto-api/" >/dev/null 2>&1 && break
    kill -0 "$moto_pid" 2>/dev/null || { cat "$TF_WORK/moto.log"; return 1; }
    sleep 0.2
  done
  (
    set -euo pipefail
    export AWS_ENDPOINT_URL="$endpoint" AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing
    export AWS_EC2_METADATA_DISABLED=true AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1
    unset AWS_PROFILE AWS_SESSION_TOKEN AWS_CONFIG_FILE AWS_SHARED_CREDENTIALS_FILE
    # A hosted zone for the records, and an image moto knows.
    read -r zone_id ami < <(python3 - <<'PYTHON'
import boto3
zone = boto3.client("route53").create_hosted_zone(Name="example.com", CallerReference="gitspaces-terraform-test")
images = boto3.client("ec2").describe_images(Owners=["amazon"])["Images"]
ami = sorted(i["ImageId"] for i in images if i.get("Architecture") == "x86_64")[0]
print(zone["HostedZone"]["Id"].split("/")[-1], ami)
PYTHON
    )
    # moto has no MonitorInstances (detailed monitoring), so that one setting is off here.
    cat >"$dir/moto.auto.tfvars.json" <<EOF
{
  "region": "us-east-1",
  "availability_zones": ["us-east-1a", "us-east-1b"],
  "domain": "gitspaces.example.com",
  "route53_zone_id": "$zone_id",
  "gateway_allowed_cidrs": ["203.0.113.0/24"],
  "control_plane_url": "https://gitspaces-api.example.com",
  "temporal_address": "temporal.example.com:7233",
  "installation_id": "moto-test",
  "service_ami": "$ami",
  "machine_ami": "$ami",
  "agent_package": { "object": "gitspaces-agent-0.1.0-linux-x64.tar.gz", "sha256": "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef" },
  "load_balancer_deletion_protection": false,
  "detailed_monitoring": false,
  "secret_recovery_window_days": 0
}
EOF
    # moto keeps no description on a rule that references another security group, so the second plan would
    # want to add them back: in this copy only, those rules carry none.
    cat >"$dir/moto_override.tf" <<'HCL'
resource "aws_vpc_security_group_ingress_rule" "agent_from_gateway" { description = null }
resource "aws_vpc_security_group_ingress_rule" "agent_from_runner" { description = null }
resource "aws_vpc_security_group_ingress_rule" "gateway_from_load_balancer" { description = null }
resource "aws_vpc_security_group_ingress_rule" "gateway_admin_from_runner" { description = null }
resource "aws_vpc_security_group_egress_rule" "this" { description = each.value.to_sg == null ? each.value.what : null }
# moto keeps a bucket's tags from CreateBucket apart from what S3 Control's ListTagsForResource answers (none), so the
# second plan would want to tag the release bucket again: in this copy only, its tags are not compared.
resource "aws_s3_bucket" "releases" {
  lifecycle {
    ignore_changes = [tags, tags_all]
  }
}
HCL
    # The provider reads the release bucket's tags through S3 Control, which puts the account id in front of the
    # endpoint's host name: 123456789012.127.0.0.1, a name no resolver knows. tofu and its providers run in a mount
    # namespace (bubblewrap) whose /etc/hosts maps it to loopback; nothing changes on the machine.
    { cat /etc/hosts; echo "127.0.0.1 123456789012.127.0.0.1"; } >"$TF_WORK/moto-hosts"
    tf() { bwrap --dev-bind / / --ro-bind "$TF_WORK/moto-hosts" /etc/hosts "$(tofu_bin)" "$@"; }
    echo "--- apply"
    tf -chdir="$dir" apply -auto-approve -input=false -no-color
    echo "--- second plan (must have no changes)"
    local plan_rc=0
    tf -chdir="$dir" plan -detailed-exitcode -input=false -no-color || plan_rc=$?
    if [[ $plan_rc -ne 0 ]]; then
      echo "the second plan has changes (exit $plan_rc): the module does not converge" >&2
      tf -chdir="$dir" destroy -auto-approve -input=false -no-color >/dev/null 2>&1 || true
      exit 1
    fi
    echo "--- outputs against the API's schemas"
    tf -chdir="$dir" output -json infrastructure_request >"$TF_WORK/aws-moto-request.json"
    (cd "$ROOT" && npx --no-install tsx scripts/terraform-check-config.ts aws <"$TF_WORK/aws-moto-request.json")
    echo "--- what the outputs name exists in moto"
    python3 - "$TF_WORK/aws-moto-request.json" <<'PYTHON'
import boto3, json, sys
config = json.load(open(sys.argv[1]))["config"]
ec2 = boto3.client("ec2")
subnet = ec2.describe_subnets(SubnetIds=[config["subnetId"]])["Subnets"][0]
assert not subnet["MapPublicIpOnLaunch"], "the machines subnet hands out public addresses"
groups = ec2.describe_security_groups(GroupIds=config["securityGroupIds"])["SecurityGroups"]
ingress = [(p.get("FromPort"), p.get("ToPort"), [g["GroupId"] for g in p.get("UserIdGroupPairs", [])], p.get("IpRanges", []))
           for p in groups[0]["IpPermissions"]]
assert all(r[0] == 8089 and r[1] == 8089 and r[2] and not r[3] for r in ingress) and len(ingress) >= 1, ingress
print("machines subnet", subnet["SubnetId"], "private; machines security group ingress:", ingress)
PYTHON
    echo "--- destroy"
    tf -chdir="$dir" destroy -auto-approve -input=false -no-color
    python3 - <<'PYTHON'
import boto3
left = boto3.client("ec2").describe_vpcs(Filters=[{"Name": "tag:managed-by", "Values": ["gitspaces-terraform"]}])["Vpcs"]
assert not left, f"destroy left VPCs behind: {left}"
print("destroy left nothing behind")
PYTHON
  ) || rc=$?
  kill "$moto_pid" 2>/dev/null || true
  wait "$moto_pid" 2>/dev/null || true
  rm -f "$dir/moto.auto.tfvars.json" "$dir/moto_override.tf" "$dir"/terraform.tfstate*
  return $rc
}

# --- the runner ---------------------------------------------------------------------------------------------

tf_check_needs() { # check -> tools it needs
  case "$1" in
    fmt) echo tofu ;;
    *-gcp) [[ "$1" == checkov-* ]] && echo checkov || echo "tofu google" ;;
    checkov-aws) echo checkov ;;
    moto-aws) echo "tofu aws moto" ;;
    *-aws) echo "tofu aws" ;;
  esac
}

tf_run_check() { # check
  local check="$1" fn module
  case "$check" in
    fmt) fn=(check_fmt) ;;
    moto-aws) fn=(check_moto) ;;
    *) module="${check##*-}" fn=("check_${check%-*}" "$module") ;;
  esac
  "${fn[@]}"
}

tf_cleanup_work() {
  if [[ "${TF_TEST_KEEP:-}" == 1 ]]; then echo "logs and work copies kept in $TF_WORK"; else rm -rf "$TF_WORK"; fi
}

tf_test_main() {
  local only=""
  while [[ $# -gt 0 ]]; do
    case "$1" in
      --only) only="$2"; shift 2 ;;
      --only=*) only="${1#--only=}"; shift ;;
      *) log "unknown argument $1"; return 2 ;;
    esac
  done
  local checks=("${ALL_CHECKS[@]}")
  if [[ -n "$only" ]]; then IFS=, read -r -a checks <<<"$only"; fi

  local started=$SECONDS
  tf_ensure_tools
  write_cli_config
  export TF_CLI_CONFIG_FILE="$CLI_CONFIG" TF_IN_AUTOMATION=1 CHECKPOINT_DISABLE=1 TF_INPUT=0
  unset TF_DATA_DIR TF_WORKSPACE
  TF_WORK="$(mktemp -d "${TMPDIR:-/tmp}/gitspaces-terraform-test.XXXXXX")"
  TF_BACKGROUND_PIDS=()
  trap 'for pid in "${TF_BACKGROUND_PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done; tf_cleanup_work' EXIT

  local passed=0 failed=0 skipped=0 check tool missing t0 rc
  for check in "${checks[@]}"; do
    missing=""
    for tool in $(tf_check_needs "$check"); do tf_have "$tool" || missing+=" $tool"; done
    if [[ -n "$missing" ]]; then
      if [[ "${TF_TEST_REQUIRE_ALL:-}" == 1 ]]; then
        echo "FAIL $check: missing$missing"
        failed=$((failed + 1))
      else
        echo "SKIP $check: missing$missing (scripts/terraform-tools.sh build)"
        skipped=$((skipped + 1))
      fi
      continue
    fi
    t0=$SECONDS
    rc=0
    tf_run_check "$check" >"$TF_WORK/$check.log" 2>&1 || rc=$?
    if [[ $rc -eq 0 ]]; then
      echo "PASS $check ($((SECONDS - t0)) s)"
      passed=$((passed + 1))
    else
      echo "FAIL $check ($((SECONDS - t0)) s, exit $rc):"
      tail -n 80 "$TF_WORK/$check.log" | sed 's/^/    /'
      failed=$((failed + 1))
    fi
  done
  echo "terraform checks took $((SECONDS - started)) s (cache: $CACHE)"
  echo "$passed passed, $failed failed, $skipped skipped"
  [[ $failed -eq 0 ]]
}
