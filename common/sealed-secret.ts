import { createCipheriv, createDecipheriv, createHmac, randomBytes } from 'node:crypto';

/**
 * Seals a secret (a repository token) with AES-256-GCM under the installation's secrets key, so it is encrypted in
 * the control-plane database and in Temporal's history and Web UI. Only the control plane and the runners hold the
 * key.
 */
export class SecretsKey {
  private constructor(private readonly key: Buffer) {}

  /** A key from its base64 form (GITSPACES_SECRETS_KEY or the data dir's `secrets-key` file). */
  static fromBase64(encoded: string): SecretsKey {
    const key = Buffer.from(encoded.trim(), 'base64');
    if (key.length !== 32) throw new Error('the secrets key must be 32 bytes, base64-encoded');
    return new SecretsKey(key);
  }

  static generateBase64(): string {
    return randomBytes(32).toString('base64');
  }

  seal(plaintext: string): string {
    const iv = randomBytes(12);
    const cipher = createCipheriv('aes-256-gcm', this.key, iv);
    const body = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
    return `sealed:v1:${Buffer.concat([iv, cipher.getAuthTag(), body]).toString('base64url')}`;
  }

  /**
   * A secret derived from the key for one purpose and one subject (the agent secret of a gitspace): the runner can
   * compute it again after a restart without storing it anywhere.
   */
  derive(purpose: string, subject: string): string {
    return createHmac('sha256', this.key).update(`${purpose}\0${subject}`).digest('base64url');
  }

  /** Throws when the value was sealed under another key or was altered. */
  unseal(sealed: string): string {
    const match = /^sealed:v1:([A-Za-z0-9_-]+)$/.exec(sealed);
    if (!match?.[1]) throw new Error('not a sealed secret');
    const raw = Buffer.from(match[1], 'base64url');
    const decipher = createDecipheriv('aes-256-gcm', this.key, raw.subarray(0, 12));
    decipher.setAuthTag(raw.subarray(12, 28));
    return Buffer.concat([decipher.update(raw.subarray(28)), decipher.final()]).toString('utf8');
  }
}
