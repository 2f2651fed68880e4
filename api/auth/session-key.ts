import { createCipheriv, createDecipheriv, hkdfSync, randomBytes } from 'node:crypto';
import path from 'node:path';
import { readOrCreateSecretFile } from '../../common/secret-file';

const KEY_BYTES = 32;
const IV_BYTES = 12;
const TAG_BYTES = 16;
const VERSION = 'v1';

/** What a sealed value is for: each purpose seals with its own key derived from the one session key. */
export type SealPurpose = 'refresh-token' | 'login-state';

/**
 * The API's own key for what it must keep from the database and the browser alike: the identity provider's refresh
 * tokens (sealed at rest in `sessions.refresh_token_sealed`) and the sign-in state it hands the browser in a cookie.
 * AES-256-GCM with a subkey per purpose (HKDF-SHA256) and the value's binding (a session's hash, the cookie's name) as
 * associated data, so a sealed value copied to another row or cookie does not open. Only the API processes hold the
 * key (GITSPACES_SESSION_KEY, or `<data dir>/session-key`): a copy of the database alone opens nothing.
 */
export class SessionKey {
  private readonly keys = new Map<SealPurpose, Buffer>();

  private constructor(private readonly key: Buffer) {}

  /** A key of 32 bytes, base64 or base64url (GITSPACES_SESSION_KEY); throws a message naming what is wrong. */
  static parse(text: string): SessionKey {
    const key = Buffer.from(text.trim(), 'base64');
    if (!/^[A-Za-z0-9+/_-]+={0,2}$/.test(text.trim()) || key.length !== KEY_BYTES) {
      throw new Error(`must be ${KEY_BYTES} random bytes, base64-encoded (openssl rand -base64 32)`);
    }
    return new SessionKey(key);
  }

  /** A key for this process only (tests, and an API that signs nobody in through a provider). */
  static random(): SessionKey {
    return new SessionKey(randomBytes(KEY_BYTES));
  }

  /** The configured key, else the one kept in `<dataDir>/session-key` (0600), generated on first use. */
  static async load(options: { dataDir: string; key?: string }): Promise<SessionKey> {
    if (options.key) return SessionKey.parse(options.key);
    const file = path.join(options.dataDir, 'session-key');
    const { value } = await readOrCreateSecretFile(file, () => randomBytes(KEY_BYTES).toString('base64'));
    return SessionKey.parse(value);
  }

  seal(purpose: SealPurpose, plaintext: string, binding: string): string {
    const iv = randomBytes(IV_BYTES);
    const cipher = createCipheriv('aes-256-gcm', this.subkey(purpose), iv, { authTagLength: TAG_BYTES });
    cipher.setAAD(Buffer.from(binding));
    const ciphertext = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
    return `${VERSION}.${Buffer.concat([iv, cipher.getAuthTag(), ciphertext]).toString('base64url')}`;
  }

  /** The plaintext, or undefined for anything this key did not seal for this purpose and binding. */
  open(purpose: SealPurpose, sealed: string, binding: string): string | undefined {
    if (!sealed.startsWith(`${VERSION}.`)) return undefined;
    const bytes = Buffer.from(sealed.slice(VERSION.length + 1), 'base64url');
    if (bytes.length < IV_BYTES + TAG_BYTES) return undefined;
    try {
      const decipher = createDecipheriv('aes-256-gcm', this.subkey(purpose), bytes.subarray(0, IV_BYTES), {
        authTagLength: TAG_BYTES,
      });
      decipher.setAAD(Buffer.from(binding));
      decipher.setAuthTag(bytes.subarray(IV_BYTES, IV_BYTES + TAG_BYTES));
      return Buffer.concat([decipher.update(bytes.subarray(IV_BYTES + TAG_BYTES)), decipher.final()]).toString('utf8');
    } catch {
      return undefined;
    }
  }

  private subkey(purpose: SealPurpose): Buffer {
    let key = this.keys.get(purpose);
    if (!key) {
      key = Buffer.from(hkdfSync('sha256', this.key, Buffer.alloc(0), `gitspaces session ${purpose}`, KEY_BYTES));
      this.keys.set(purpose, key);
    }
    return key;
  }
}
