import { createHash } from 'node:crypto';

/**
 * OpenSSH's fingerprint of a public key in wire format (the base64 part of an `authorized_keys` line, decoded):
 * `SHA256:` and the unpadded base64 of its SHA-256, as `ssh-keygen -l` prints it. The API, the gateway and the agent
 * compare keys by it.
 */
export function sshFingerprint(blob: Buffer): string {
  return `SHA256:${createHash('sha256').update(blob).digest('base64').replace(/=+$/, '')}`;
}
