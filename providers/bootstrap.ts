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
import type { AgentBootstrap } from './types';
import { AGENT_PORT, DATA_DISK_DEVICE_NAME, DATA_MOUNT_DIR, WORKSPACE_DIR } from './naming';

/** How a machine gets the agent: part of the `gcp` and `aws` infrastructure config (`config.agent`). */
export const agentInstallConfigSchema = z
  .object({
    /**
     * URL of the gitspaces package tarball (`npm pack` of this repository, hosted where the machines can reach it).
     * When absent, the image must already carry the package under /opt/gitspaces.
     */
    packageUrl: z.url({ protocol: /^https?$/, message: 'must be an http(s) URL' }).optional(),
    /** Shell command that installs Node.js 20 or newer when the image lacks it (default: the distro's packages). */
    nodeInstallCommand: z.string().min(1).optional(),
    /** Shell command that installs the browser IDE for `vscode-web` (default: code-server through npm). */
    vscodeInstallCommand: z.string().min(1).optional(),
  })
  .strict();
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
  const nodeInstall =
    agent.nodeInstallCommand ??
    'if command -v dnf >/dev/null; then dnf install -y nodejs22 || dnf install -y nodejs; ' +
      'else apt-get update && apt-get install -y nodejs npm; fi';
  const ideInstall: Record<AgentBootstrap['ide'], string> = {
    'vscode-web': agent.vscodeInstallCommand ?? 'command -v code-server >/dev/null || npm install -g code-server',
    terminal: 'true',
    ssh: 'command -v sshd >/dev/null || (command -v dnf >/dev/null && dnf install -y openssh-server) || (apt-get update && apt-get install -y openssh-server)',
  };
  const agentInstall = agent.packageUrl
    ? `npm install --prefix ${INSTALL_DIR} --omit=dev --no-audit --no-fund ${shellQuote(agent.packageUrl)}`
    : `echo "no agent package URL configured and none on the image under ${INSTALL_DIR}" >&2; exit 1`;

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

# 2. Node.js 20 or newer, the agent and the IDE (skipped when the image already has them).
node_major() { node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0; }
if [ "$(node_major)" -lt 20 ]; then ${nodeInstall}; fi
if [ "$(node_major)" -lt 20 ]; then echo "gitspaces: Node.js 20 or newer is required; set config.agent.nodeInstallCommand" >&2; exit 1; fi
if [ ! -f ${INSTALL_DIR}/node_modules/gitspaces/dist/agent/main.js ]; then ${agentInstall}; fi
${ideInstall[bootstrap.ide]}

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
WorkingDirectory=${INSTALL_DIR}/node_modules/gitspaces
# The compiled agent (npm run build): no TypeScript runtime, no dev dependencies on the machine.
ExecStart=/usr/bin/env node dist/agent/main.js
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
