import { generateKeyPairSync, randomBytes } from 'node:crypto';
import path from 'node:path';
import { utils } from 'ssh2';
import { readOrCreateSecretFile } from '../../common/secret-file';

/** The gitspace's SSH host key: what the SSH server signs with, and the line clients pin in their known_hosts. */
export interface HostKey {
  /** The private key in OpenSSH format, as ssh2's Server and ssh-keygen read it. */
  privateKey: string;
  /** `ssh-ed25519 AAAA…`: the public key as a known_hosts or authorized_keys line, without a comment. */
  publicKey: string;
}

/** Where the host key is kept: beside the git credentials, in the gitspace user's home, so it survives a restart. */
export function hostKeyFile(homeDir: string, gitspaceId: string): string {
  return path.join(homeDir, '.config', 'gitspaces', `ssh-host-key-${gitspaceId.replace(/[^A-Za-z0-9._-]/g, '_')}`);
}

/**
 * Loads the gitspace's ed25519 host key, creating it on first use (file 0600, directory 0700). One key per gitspace,
 * made on its machine: the control plane learns only the public half (through `PUT /_agent/route`).
 */
export async function loadOrCreateHostKey(homeDir: string, gitspaceId: string): Promise<HostKey> {
  const file = hostKeyFile(homeDir, gitspaceId);
  const { value: privateKey } = await readOrCreateSecretFile(file, newEd25519PrivateKey);
  const parsed = utils.parseKey(privateKey);
  if (parsed instanceof Error || !parsed.isPrivateKey()) {
    throw new Error(`${file} holds no usable SSH private key; remove it and restart the gitspace to make a new one`);
  }
  return { privateKey, publicKey: `${parsed.type} ${parsed.getPublicSSH().toString('base64')}` };
}

/**
 * A new ed25519 key in OpenSSH's private key format (PROTOCOL.key, unencrypted). Made here from node:crypto rather than
 * by ssh2's generateKeyPairSync, which drops a public key's leading zero byte and so makes one key in 256 unreadable.
 */
export function newEd25519PrivateKey(): string {
  const jwk = generateKeyPairSync('ed25519').privateKey.export({ format: 'jwk' });
  const seed = Buffer.from(jwk.d!, 'base64url');
  const publicKey = Buffer.from(jwk.x!, 'base64url');
  const publicBlob = Buffer.concat([sshString('ssh-ed25519'), sshString(publicKey)]);
  const check = randomBytes(4);
  const secret = Buffer.concat([
    check,
    check,
    publicBlob,
    sshString(Buffer.concat([seed, publicKey])),
    sshString(''), // comment
  ]);
  const padding = Buffer.from(Array.from({ length: (8 - (secret.length % 8)) % 8 }, (_, i) => i + 1));
  const body = Buffer.concat([
    Buffer.from('openssh-key-v1\0'),
    sshString('none'), // cipher
    sshString('none'), // key derivation
    sshString(''), // key derivation options
    uint32(1), // number of keys
    sshString(publicBlob),
    sshString(Buffer.concat([secret, padding])),
  ]);
  const lines = body.toString('base64').match(/.{1,70}/g)!;
  return ['-----BEGIN OPENSSH PRIVATE KEY-----', ...lines, '-----END OPENSSH PRIVATE KEY-----'].join('\n');
}

function sshString(value: string | Buffer): Buffer {
  const bytes = typeof value === 'string' ? Buffer.from(value) : value;
  return Buffer.concat([uint32(bytes.length), bytes]);
}

function uint32(value: number): Buffer {
  const buffer = Buffer.alloc(4);
  buffer.writeUInt32BE(value);
  return buffer;
}
