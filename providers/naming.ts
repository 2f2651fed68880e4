/**
 * Names, labels and idempotency tokens shared by the cloud providers. Everything is derived from the gitspace id or
 * the caller's idempotency key, so a retried or reset activity computes the same values and adopts what it made.
 */
import { createHash } from 'node:crypto';

/** Label (GCP) and tag (AWS) keys carried by every machine and disk a provider creates. */
export const MACHINE_LABELS = {
  gitspaceId: 'gitspace-id',
  installation: 'gitspaces-installation',
} as const;

/** The port the gitspace agent listens on inside a cloud machine (set by the bootstrap script). */
export const AGENT_PORT = 8089;

/** Device name of the data disk (GCP `deviceName`, so it shows up as `/dev/disk/by-id/google-gitspace-data`). */
export const DATA_DISK_DEVICE_NAME = 'gitspace-data';

/** Where the bootstrap mounts the data disk; the workspace lives under it so it survives stop and start. */
export const DATA_MOUNT_DIR = '/mnt/gitspace-data';
export const WORKSPACE_DIR = `${DATA_MOUNT_DIR}/workspace`;

const MAX_NAME = 63;
const DATA_SUFFIX = '-data';

/**
 * The machine name of a gitspace: a valid GCP resource name and AWS `Name` tag (`[a-z]([-a-z0-9]*[a-z0-9])?`, at
 * most 57 characters so the data disk name fits in 63). Ids that needed changing get a hash suffix so two ids never
 * share a name.
 */
export function machineNameFor(gitspaceId: string): string {
  return safeName(`gitspace-${gitspaceId}`, MAX_NAME - DATA_SUFFIX.length);
}

/** The data disk name of a gitspace (GCP disk name). */
export function dataDiskNameFor(gitspaceId: string): string {
  return `${machineNameFor(gitspaceId)}${DATA_SUFFIX}`;
}

/** A GCP label value (lowercase letters, digits, `-`, `_`, at most 63) that stands for `value`, one-to-one. */
export function labelValueFor(value: string): string {
  if (/^[a-z0-9_-]{1,63}$/.test(value)) return value;
  return withHash(value.toLowerCase().replace(/[^a-z0-9_-]+/g, '-'), value, MAX_NAME);
}

/** The labels every resource of a gitspace carries. */
export function machineLabelsFor(gitspaceId: string, installationId: string): Record<string, string> {
  return {
    [MACHINE_LABELS.gitspaceId]: labelValueFor(gitspaceId),
    [MACHINE_LABELS.installation]: labelValueFor(installationId),
  };
}

/**
 * A UUID derived from an idempotency key, for GCP's `requestId` (which must be a UUID). `scope` names the call and
 * its target, so one key used for two different calls never makes the cloud mistake one for the other.
 */
export function deriveRequestId(scope: string, idempotencyKey: string): string {
  const hex = digest(`${scope}\n${idempotencyKey}`);
  // RFC 4122 layout, version 5 (name-based) and variant bits set.
  const variant = ((parseInt(hex.slice(16, 17), 16) & 0x3) | 0x8).toString(16);
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-5${hex.slice(13, 16)}-${variant}${hex.slice(17, 20)}-${hex.slice(20, 32)}`;
}

/** An AWS `ClientToken` (at most 64 ASCII characters) derived from an idempotency key, scoped like deriveRequestId. */
export function deriveClientToken(scope: string, idempotencyKey: string): string {
  return digest(`${scope}\n${idempotencyKey}`);
}

/** The agent's base URL at a machine's private address. */
export function agentUrlFor(privateIp: string | undefined | null): string | undefined {
  return privateIp ? `http://${privateIp}:${AGENT_PORT}` : undefined;
}

function safeName(wanted: string, max: number): string {
  if (wanted.length <= max && /^[a-z]([-a-z0-9]*[a-z0-9])?$/.test(wanted)) return wanted;
  const slug = wanted
    .toLowerCase()
    .replace(/[^a-z0-9-]+/g, '-')
    .replace(/-+/g, '-');
  return withHash(slug, wanted, max);
}

function withHash(slug: string, original: string, max: number): string {
  const hash = digest(original).slice(0, 8);
  const head = slug.slice(0, max - hash.length - 1).replace(/-+$/, '');
  return `${head}-${hash}`;
}

function digest(value: string): string {
  return createHash('sha256').update(value).digest('hex');
}
