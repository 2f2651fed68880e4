import { createHash, createPublicKey } from 'node:crypto';
import { utils } from 'ssh2';

/**
 * OpenSSH's fingerprint of a public key in wire format (the base64 part of an `authorized_keys` line, decoded):
 * `SHA256:` and the unpadded base64 of its SHA-256, as `ssh-keygen -l` prints it. The API, the gateway and the agent
 * compare keys by it.
 */
export function sshFingerprint(blob: Buffer): string {
  return `SHA256:${createHash('sha256').update(blob).digest('base64').replace(/=+$/, '')}`;
}

/** The longest public key line accepted: an RSA key of 16384 bits with a long comment fits. */
export const MAX_SSH_PUBLIC_KEY_BYTES = 8 * 1024;

/** The smallest RSA modulus accepted, as OpenSSH's own minimum since 9.x and NIST's. */
export const MIN_RSA_BITS = 2048;

/** Key types a user may register: those ssh2 verifies signatures of, and nothing known to be weak. */
export const SSH_KEY_TYPES = [
  'ssh-ed25519',
  'ecdsa-sha2-nistp256',
  'ecdsa-sha2-nistp384',
  'ecdsa-sha2-nistp521',
  'ssh-rsa',
] as const;
export type SshKeyType = (typeof SSH_KEY_TYPES)[number];

/** What a public key line looks like, for messages. */
const EXPECTED_FORM = '<type> <base64 key> [comment], as in ~/.ssh/id_ed25519.pub';

/** Names of SSH key types, supported or not: what tells an options prefix from the key that follows it. */
const KEY_TYPE_NAME = /^(ssh-|ecdsa-|sk-)/;

/** An OpenSSH public key as a user registers it (`ssh-ed25519 AAAA… comment`). */
export interface OpenSshPublicKey {
  type: SshKeyType;
  /** The key in wire format: what an SSH client presents and what the fingerprint is taken of. */
  blob: Buffer;
  /** The line's comment (often `user@host`); empty when it has none. */
  comment: string;
  /** {@link sshFingerprint} of the blob. */
  fingerprint: string;
  /** The modulus size of an RSA key. */
  bits?: number;
}

/** Thrown when a public key line cannot be registered; the message says why, for the user to read. */
export class InvalidSshPublicKeyError extends Error {
  constructor(reason: string) {
    super(reason);
    this.name = 'InvalidSshPublicKeyError';
  }
}

/**
 * Parses one `authorized_keys`-style line (`<type> <base64> [comment]`, as `~/.ssh/id_ed25519.pub` holds it) or
 * throws InvalidSshPublicKeyError saying why. ssh2's `utils.parseKey` checks the key's inner structure (the type
 * inside the blob, the curve, the sizes); on top of it the blob must be exactly the key ssh2 read back, because
 * parseKey ignores trailing bytes and an ECDSA curve field that contradicts the type, and the fingerprint the agent
 * compares is taken of the bytes the client sends.
 */
export function parseOpenSshPublicKey(text: string): OpenSshPublicKey {
  if (Buffer.byteLength(text) > MAX_SSH_PUBLIC_KEY_BYTES) {
    throw new InvalidSshPublicKeyError(`is longer than 8 KiB (${MAX_SSH_PUBLIC_KEY_BYTES} bytes)`);
  }
  const trimmed = text.trim();
  if (trimmed === '') throw new InvalidSshPublicKeyError('is empty; paste the contents of your ~/.ssh/id_*.pub file');
  if (/PRIVATE KEY/.test(trimmed)) {
    throw new InvalidSshPublicKeyError(
      'is a private key; register the public one (the .pub file), and keep this secret',
    );
  }
  if (/[\r\n]/.test(trimmed)) throw new InvalidSshPublicKeyError(`must be one line: ${EXPECTED_FORM}`);
  // eslint-disable-next-line no-control-regex -- control characters are exactly what this refuses
  if (/[\0-\x1f\x7f]/.test(trimmed)) throw new InvalidSshPublicKeyError('must not contain control characters');
  const match = /^(\S+)\s+(\S+)(?:\s+(.*))?$/.exec(trimmed);
  if (!match) throw new InvalidSshPublicKeyError(`is not an OpenSSH public key: expected ${EXPECTED_FORM}`);
  const [, type = '', base64 = '', comment = ''] = match;
  if (!KEY_TYPE_NAME.test(type) && /\s(ssh-|ecdsa-|sk-)\S+\s+AAAA/.test(trimmed)) {
    throw new InvalidSshPublicKeyError(`starts with authorized_keys options; register the key alone: ${EXPECTED_FORM}`);
  }
  const problem = typeProblem(type);
  if (problem) throw new InvalidSshPublicKeyError(problem);
  const blob = Buffer.from(base64, 'base64');
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(base64) || blob.toString('base64') !== base64) {
    throw new InvalidSshPublicKeyError('has a key that is not valid base64');
  }
  const blobType = wireType(blob);
  if (blobType !== type) {
    throw new InvalidSshPublicKeyError(
      blobType === undefined
        ? 'is malformed: the key does not start with its type'
        : `says ${type} but the key is ${blobType}`,
    );
  }
  const parsed = utils.parseKey(`${type} ${base64}`);
  if (parsed instanceof Error || Array.isArray(parsed) || !parsed.getPublicSSH().equals(blob)) {
    throw new InvalidSshPublicKeyError(`is malformed: not a valid ${type} key`);
  }
  const key: OpenSshPublicKey = { type: type as SshKeyType, blob, comment, fingerprint: sshFingerprint(blob) };
  if (type === 'ssh-rsa') {
    const bits = createPublicKey(parsed.getPublicPEM()).asymmetricKeyDetails?.modulusLength ?? 0;
    if (bits < MIN_RSA_BITS) {
      throw new InvalidSshPublicKeyError(
        `is an RSA key of ${bits} bits; at least ${MIN_RSA_BITS} are needed (better: ssh-keygen -t ed25519)`,
      );
    }
    key.bits = bits;
  }
  return key;
}

/** Why a key type is refused, or undefined when it is accepted. */
function typeProblem(type: string): string | undefined {
  if ((SSH_KEY_TYPES as readonly string[]).includes(type)) return undefined;
  if (type.startsWith('sk-')) {
    return `is a security-key (${type}) key, which the gitspace's SSH server cannot verify; use ssh-ed25519 or ecdsa`;
  }
  if (type === 'ssh-dss') return 'is a DSA key, which is insecure (OpenSSH disabled them); use ssh-ed25519';
  if (type.includes('-cert-')) return 'is a certificate; register the plain public key it certifies';
  return `is not an OpenSSH public key of a supported type ('${type.slice(0, 64)}'); use one of ${SSH_KEY_TYPES.join(', ')}`;
}

/** The type name a wire-format key starts with, or undefined when the blob is too short to hold one. */
function wireType(blob: Buffer): string | undefined {
  if (blob.length < 4) return undefined;
  const length = blob.readUInt32BE(0);
  if (length === 0 || length > 64 || blob.length < 4 + length) return undefined;
  return blob.subarray(4, 4 + length).toString('latin1');
}
