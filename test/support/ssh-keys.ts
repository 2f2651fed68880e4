/** SSH public keys for tests, made with node:crypto and written in OpenSSH's format. */
import { generateKeyPairSync } from 'node:crypto';

/** An SSH wire-format string: its length (uint32, big-endian), then its bytes. */
export function sshString(value: Buffer | string): Buffer {
  const bytes = Buffer.from(value);
  const length = Buffer.alloc(4);
  length.writeUInt32BE(bytes.length);
  return Buffer.concat([length, bytes]);
}

/**
 * A new ed25519 public key as one OpenSSH line (`ssh-ed25519 AAAA… comment`). Not ssh2's generateKeyPairSync, whose
 * ed25519 public key loses a leading zero byte (about one key in 500 comes out malformed).
 */
export function ed25519PublicKey(comment = ''): string {
  const x = Buffer.from(generateKeyPairSync('ed25519').publicKey.export({ format: 'jwk' }).x!, 'base64url');
  const blob = Buffer.concat([sshString('ssh-ed25519'), sshString(x)]);
  return `ssh-ed25519 ${blob.toString('base64')}${comment ? ` ${comment}` : ''}`;
}
