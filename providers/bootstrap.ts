/**
 * The machine bootstrap shared by the cloud providers: a shell script (GCP `startup-script` metadata, AWS user data)
 * that mounts the data disk, installs Node.js, the gitspace agent and the IDE, and starts the agent as a systemd
 * service. It runs on every boot, so a stopped machine comes back with the current agent secret.
 *
 * It carries the agent secret and nothing else secret: the repository token never goes into metadata or user data.
 * The runner hands it to the agent over the private network after boot (`POST /_agent/workspace`, authorised by the
 * agent secret).
 */
import { z } from 'zod';
import type { AgentBootstrap } from '../contracts/provider';
import { CODE_SERVER } from '../agent/ide/code-server';
import { NODE_DIST_URL, NODE_RUNTIME } from './node-runtime';
import { AGENT_PORT, DATA_DISK_DEVICE_NAME, DATA_MOUNT_DIR, WORKSPACE_DIR } from './naming';

/** How a machine gets the agent: part of the `gcp` and `aws` infrastructure config (`config.agent`). */
export const agentInstallConfigSchema = z
  .object({
    /**
     * URL of the agent package: the `gitspaces-agent-<version>-linux-<arch>.tar.gz` of `npm run package` (the compiled
     * agent with its production node_modules, built for the pinned Node.js), hosted where the machines reach it, e.g.
     * the release bucket of the Terraform module. When absent, the image must carry it unpacked under /opt/gitspaces/agent.
     */
    packageUrl: z.url({ protocol: /^https?$/, message: 'must be an http(s) URL' }).optional(),
    /** SHA-256 of that package (dist/packages/SHA256SUMS); the machine refuses a package that does not match. */
    packageSha256: z
      .string()
      .regex(/^[0-9a-f]{64}$/, 'must be 64 lowercase hex digits')
      .optional(),
    /**
     * Where the machine downloads the pinned Node.js tarball (`<nodeDistUrl>/v<version>/node-v<version>-linux-<arch>.tar.xz`,
     * the layout of the official download site, which is the default): a mirror or a bucket for machines without
     * internet access. The tarball's SHA-256 is pinned in the code, whatever serves it.
     */
    nodeDistUrl: z.url({ protocol: /^https?$/, message: 'must be an http(s) URL' }).optional(),
    /**
     * Shell command that installs the browser IDE for `vscode-web` (default: code-server CODE_SERVER.version through
     * npm, built for the agent's pinned Node.js).
     */
    vscodeInstallCommand: z.string().min(1).optional(),
  })
  .strict()
  .superRefine((agent, ctx) => {
    if (agent.packageUrl && !agent.packageSha256)
      ctx.addIssue({
        code: 'custom',
        path: ['packageSha256'],
        message: 'required with packageUrl: the SHA-256 of the agent package, which the machine checks',
      });
    if (agent.packageSha256 && !agent.packageUrl)
      ctx.addIssue({ code: 'custom', path: ['packageUrl'], message: 'required with packageSha256' });
  });
export type AgentInstallConfig = z.infer<typeof agentInstallConfigSchema>;

export interface BootstrapScriptInput {
  gitspaceId: string;
  bootstrap: AgentBootstrap;
  agent: AgentInstallConfig;
  /** Device paths where the data disk may appear, most specific first; the script falls back to the one empty disk. */
  dataDiskDevices: readonly string[];
}

/** Where the data disk appears on a GCP machine. */
export const GCP_DATA_DISK_DEVICES = [`/dev/disk/by-id/google-${DATA_DISK_DEVICE_NAME}`] as const;
/** Where the data disk (mapped as /dev/sdf) appears on an EC2 machine; Nitro machines name it nvme*, found by fallback. */
export const AWS_DATA_DISK_DEVICE = '/dev/sdf';
export const AWS_DATA_DISK_DEVICES = [AWS_DATA_DISK_DEVICE, '/dev/xvdf'] as const;

const INSTALL_DIR = '/opt/gitspaces';
/** The unpacked agent package (dist, node_modules, package.json). */
const AGENT_DIR = `${INSTALL_DIR}/agent`;
/** A symlink to the installed pinned Node.js, `${INSTALL_DIR}/node-v<version>-linux-<arch>`. */
const NODE_LINK = `${INSTALL_DIR}/node`;
/** Delimit the package installs (build tools, code-server, sftp-server) in the rendered script (a test runs them). */
export const PACKAGES_BEGIN = '# --- gitspaces: packages ---';
export const PACKAGES_END = '# --- gitspaces: end of packages ---';
/** Delimit the Node.js install in the rendered script (a test runs exactly that part). */
export const NODE_INSTALL_BEGIN = '# --- gitspaces: pinned Node.js install ---';
export const NODE_INSTALL_END = '# --- gitspaces: end of pinned Node.js install ---';
/** Ends the here-document that writes the agent secret: no secret can be this line (SAFE_VALUE has no ':'). */
const SECRET_MARKER = 'GITSPACES_AGENT_SECRET_END:';
const SAFE_VALUE = /^[A-Za-z0-9._~+/=-]+$/;

/** Renders the bootstrap shell script. Throws when a value could break out of its quoting. */
export function renderBootstrapScript(input: BootstrapScriptInput): string {
  const { gitspaceId, bootstrap, agent } = input;
  // Values go into a systemd EnvironmentFile and shell words: allow only characters that need no quoting there.
  if (!SAFE_VALUE.test(gitspaceId))
    throw new Error(`gitspace id '${gitspaceId}' has characters the bootstrap cannot carry`);
  if (!SAFE_VALUE.test(bootstrap.agentSecret))
    throw new Error('the agent secret has characters the bootstrap cannot carry');
  const env = {
    GITSPACE_ID: gitspaceId,
    GITSPACE_WORKSPACE_DIR: WORKSPACE_DIR,
    GITSPACE_IDE: bootstrap.ide,
    GITSPACE_AGENT_PORT: String(AGENT_PORT),
  };
  // SSH reaches every kind through the gateway (the agent's own SSH server): no kind gets an sshd of its own.
  const ideInstall: Record<AgentBootstrap['ide'], string> = {
    'vscode-web': agent.vscodeInstallCommand ?? 'install_code_server',
    terminal: 'true',
    ssh: 'true',
  };
  // Without a package the image must carry the agent, unpacked: the check after the install says so.
  const agentInstall =
    agent.packageUrl && agent.packageSha256
      ? `install_agent ${shellQuote(agent.packageUrl)} ${agent.packageSha256}`
      : `# config.agent.packageUrl is not set: the image carries the agent under ${AGENT_DIR}`;

  return `#!/bin/bash
# gitspaces bootstrap for gitspace ${gitspaceId}: runs on every boot.
set -euo pipefail
exec > >(tee -a /var/log/gitspaces-bootstrap.log) 2>&1

find_data_disk() {
  for candidate in ${input.dataDiskDevices.map(shellQuote).join(' ')}; do
    if [ -b "$candidate" ]; then readlink -f "$candidate"; return; fi
  done
  # Fallback: the one whole disk that has no partitions and is not mounted (the root disk always is).
  lsblk -dnpo NAME,TYPE | awk '$2 == "disk" { print $1 }' | while read -r disk; do
    if [ "$(lsblk -npo NAME "$disk" | wc -l)" = 1 ] && [ -z "$(lsblk -npo MOUNTPOINT "$disk" | tr -d '[:space:]')" ]; then
      echo "$disk"; break
    fi
  done
}

# 1. The data disk: formatted on first boot only, mounted by label on every boot.
if ! mountpoint -q ${DATA_MOUNT_DIR}; then
  disk="$(find_data_disk)"
  if [ -z "$disk" ]; then echo "gitspaces: data disk not found" >&2; exit 1; fi
  blkid "$disk" >/dev/null || mkfs.ext4 -q -L gitspace-data "$disk"
  mkdir -p ${DATA_MOUNT_DIR}
  grep -q 'LABEL=gitspace-data' /etc/fstab || echo 'LABEL=gitspace-data ${DATA_MOUNT_DIR} ext4 defaults,nofail 0 2' >> /etc/fstab
  mount ${DATA_MOUNT_DIR}
fi
id gitspace >/dev/null 2>&1 || useradd --create-home --shell /bin/bash gitspace
mkdir -p ${WORKSPACE_DIR}
chown gitspace: ${WORKSPACE_DIR}

# 2. The pinned Node.js, the agent and the IDE (each skipped when the machine already has the right one).
umask 022
${renderNodeInstall(agent.nodeDistUrl ?? NODE_DIST_URL)}
install_node
export PATH="${NODE_LINK}/bin:$PATH"

install_agent() { # url sha256: the agent package of \`npm run package\`, checked, unpacked into ${AGENT_DIR}
  local url="$1" sha="$2" tmp
  if [ "$(cat ${AGENT_DIR}/.package-sha256 2>/dev/null || true)" = "$sha" ]; then return 0; fi
  tmp="$(mktemp -d ${INSTALL_DIR}/.agent.XXXXXX)"
  curl -fsSL --retry 8 --retry-connrefused -o "$tmp/agent.tar.gz" "$url"
  if ! echo "$sha  $tmp/agent.tar.gz" | sha256sum -c --status; then
    echo "gitspaces: the agent package from $url does not have the SHA-256 of config.agent.packageSha256; refusing it" >&2
    rm -rf "$tmp"; return 1
  fi
  mkdir "$tmp/agent"
  tar -xzf "$tmp/agent.tar.gz" -C "$tmp/agent" --strip-components=1 --no-same-owner
  if [ ! -f "$tmp/agent/dist/agent/main.js" ]; then
    echo "gitspaces: $url is not an agent package (no dist/agent/main.js)" >&2; rm -rf "$tmp"; return 1
  fi
  echo "$sha" > "$tmp/agent/.package-sha256"
  rm -rf ${AGENT_DIR}.old
  if [ -e ${AGENT_DIR} ]; then mv ${AGENT_DIR} ${AGENT_DIR}.old; fi
  mv "$tmp/agent" ${AGENT_DIR}
  rm -rf ${AGENT_DIR}.old "$tmp"
}
${agentInstall}
if [ ! -f ${AGENT_DIR}/dist/agent/main.js ]; then
  echo "gitspaces: no agent package configured (config.agent.packageUrl) and none on the image under ${AGENT_DIR}" >&2
  exit 1
fi
${PACKAGES_BEGIN}
${renderPackageInstalls()}
install_sftp_server || echo "gitspaces: sftp-server could not be installed: scp and sftp will not work" >&2
${ideInstall[bootstrap.ide]}
${PACKAGES_END}

# 3. The agent, as a service that restarts on failure.
install -d -m 700 /etc/gitspaces
cat > /etc/gitspaces/agent.env <<'GITSPACES_ENV'
${Object.entries(env)
  .map(([key, value]) => `${key}=${value}`)
  .join('\n')}
GITSPACES_ENV
# The agent listens only on the private address the gateway and the runner reach, not on every interface.
private_address="$(ip -4 -o addr show scope global | awk '{ split($4, a, "/"); print a[1]; exit }')"
if [ -z "$private_address" ]; then echo "gitspaces: no private IPv4 address to listen on" >&2; exit 1; fi
echo "GITSPACE_AGENT_HOST=$private_address" >> /etc/gitspaces/agent.env
chmod 600 /etc/gitspaces/agent.env
# The agent secret reaches the agent as a systemd credential (a file), never through its environment, where its
# children and /proc/<agent>/environ would see it.
install -m 600 /dev/null /etc/gitspaces/agent-secret
cat > /etc/gitspaces/agent-secret <<'${SECRET_MARKER}'
${bootstrap.agentSecret}
${SECRET_MARKER}
cat > /etc/systemd/system/gitspaces-agent.service <<'GITSPACES_UNIT'
[Unit]
Description=gitspaces agent
After=network-online.target
Wants=network-online.target
RequiresMountsFor=${DATA_MOUNT_DIR}

[Service]
User=gitspace
EnvironmentFile=/etc/gitspaces/agent.env
LoadCredential=agent-secret:/etc/gitspaces/agent-secret
Environment=GITSPACE_AGENT_SECRET_FILE=%d/agent-secret
Environment=PATH=${NODE_LINK}/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
WorkingDirectory=${AGENT_DIR}
# The compiled agent on the pinned Node.js: no TypeScript runtime, no dev dependencies on the machine.
ExecStart=${NODE_LINK}/bin/node ${AGENT_DIR}/dist/agent/main.js
Restart=always
RestartSec=2

[Install]
WantedBy=multi-user.target
GITSPACES_UNIT
systemctl daemon-reload
systemctl enable gitspaces-agent.service
systemctl restart gitspaces-agent.service
`;
}

/**
 * The shell functions that install distribution packages and code-server. Packages come from apt or dnf, never with
 * what they merely recommend: Debian's openssh-sftp-server recommends openssh-server, an sshd on port 22 that would be
 * a second door into the machine past the gateway.
 */
function renderPackageInstalls(): string {
  return `install_packages() { # "apt names" "dnf names"
  if command -v apt-get >/dev/null; then
    if [ -z "\${gitspaces_apt_updated:-}" ]; then DEBIAN_FRONTEND=noninteractive apt-get update -q; gitspaces_apt_updated=1; fi
    # shellcheck disable=SC2086
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $1
  elif command -v dnf >/dev/null; then
    # shellcheck disable=SC2086
    dnf install -y --setopt=install_weak_deps=False $2
  else
    echo "gitspaces: neither apt-get nor dnf is here to install $1" >&2; return 1
  fi
}

install_sftp_server() { # OpenSSH's sftp-server, which the agent runs for scp and sftp over the gateway; never an sshd
  local candidate
  for candidate in ${SFTP_SERVER_PATHS.join(' ')}; do
    if [ -x "$candidate" ]; then return 0; fi
  done
  if command -v apt-get >/dev/null; then
    install_packages openssh-sftp-server ''
  else
    # Fedora and Amazon Linux ship it only inside openssh-server.
    echo "gitspaces: no sftp-server on this image, and outside Debian it comes only with openssh-server, which gitspaces never installs" >&2
    return 1
  fi
}

install_code_server() { # code-server ${CODE_SERVER.version} for the pinned Node.js, its native modules built offline
  if [ "$(code-server --version 2>/dev/null | head -n 1 | cut -d ' ' -f 1 || true)" = "${CODE_SERVER.version}" ]; then return 0; fi
  install_packages 'python3 make g++ pkg-config libkrb5-dev' 'python3 make gcc-c++ pkgconfig krb5-devel'
  # node-gyp takes the headers of the installed Node.js instead of downloading them.
  npm_config_nodedir=${NODE_LINK} npm install -g --no-audit --no-fund code-server@${CODE_SERVER.version}
}`;
}

/** Where distributions put OpenSSH's sftp-server (Debian, Fedora and Amazon Linux, Arch, others). */
const SFTP_SERVER_PATHS = [
  '/usr/lib/openssh/sftp-server',
  '/usr/libexec/openssh/sftp-server',
  '/usr/lib/ssh/sftp-server',
  '/usr/libexec/sftp-server',
];

/**
 * The shell function `install_node` of the bootstrap: installs the pinned Node.js from the official tarball (or the
 * same file under `distUrl`) into ${INSTALL_DIR}/node-v<version>-linux-<arch>, checked against its pinned SHA-256
 * and refused on a mismatch, and points ${NODE_LINK} at it. Does nothing when that Node.js is already there.
 */
export function renderNodeInstall(distUrl: string): string {
  const base = distUrl.replace(/\/+$/, '');
  const { version, arches } = NODE_RUNTIME;
  const cases = Object.entries(arches)
    .map(
      ([arch, pin]) =>
        `    ${arch === 'x64' ? 'x86_64|amd64' : 'aarch64|arm64'}) arch=${arch}; sha=${pin.tarballSha256} ;;`,
    )
    .join('\n');
  return `${NODE_INSTALL_BEGIN}
install_node() {
  local version=${version} base=${shellQuote(base)} arch sha name dir tmp
  case "$(uname -m)" in
${cases}
    *) echo "gitspaces: no pinned Node.js for $(uname -m)" >&2; return 1 ;;
  esac
  name="node-v$version-linux-$arch"
  dir="${INSTALL_DIR}/$name"
  if [ "$("${NODE_LINK}/bin/node" --version 2>/dev/null || true)" = "v$version" ]; then return 0; fi
  mkdir -p ${INSTALL_DIR}
  tmp="$(mktemp -d ${INSTALL_DIR}/.node.XXXXXX)"
  curl -fsSL --retry 8 --retry-connrefused -o "$tmp/$name.tar.xz" "$base/v$version/$name.tar.xz"
  if ! echo "$sha  $tmp/$name.tar.xz" | sha256sum -c --status; then
    echo "gitspaces: $name.tar.xz from $base does not have its pinned SHA-256 $sha; refusing it" >&2
    rm -rf "$tmp"; return 1
  fi
  tar -xJf "$tmp/$name.tar.xz" -C "$tmp" --no-same-owner
  if [ "$("$tmp/$name/bin/node" --version 2>/dev/null || true)" != "v$version" ]; then
    echo "gitspaces: $name.tar.xz holds no working Node.js v$version" >&2; rm -rf "$tmp"; return 1
  fi
  rm -rf "$dir"
  mv "$tmp/$name" "$dir"
  rm -rf "$tmp"
  ln -sfn "$dir" ${NODE_LINK}.new
  mv -T ${NODE_LINK}.new ${NODE_LINK}
}
${NODE_INSTALL_END}`;
}

/**
 * Wraps the script as EC2 user data: a MIME multipart with a cloud-config part that makes cloud-init run user
 * scripts on every boot (by default it runs them only on the first), so a restarted machine gets the new secret.
 */
export function renderAwsUserData(script: string): string {
  const boundary = 'GITSPACES-BOUNDARY';
  return [
    'Content-Type: multipart/mixed; boundary="' + boundary + '"',
    'MIME-Version: 1.0',
    '',
    `--${boundary}`,
    'Content-Type: text/cloud-config; charset="us-ascii"',
    '',
    '#cloud-config',
    'cloud_final_modules:',
    '  - [scripts-user, always]',
    '',
    `--${boundary}`,
    'Content-Type: text/x-shellscript; charset="us-ascii"',
    '',
    script,
    `--${boundary}--`,
    '',
  ].join('\n');
}

/** Reads the agent secret back out of a rendered script (to tell whether a restart must rewrite it). */
export function agentSecretIn(rendered: string): string | undefined {
  return new RegExp(`<<'${SECRET_MARKER}'\n(.*)\n${SECRET_MARKER}$`, 'm').exec(rendered)?.[1];
}

function shellQuote(value: string): string {
  return `'${value.replace(/'/g, `'\\''`)}'`;
}
