import {
  createCipheriv,
  createDecipheriv,
  createHash,
  createHmac,
  createPrivateKey,
  createPublicKey,
  diffieHellman,
  generateKeyPairSync,
  hkdfSync,
  randomBytes,
  type KeyObject,
} from 'node:crypto';
import path from 'node:path';
import { readOrCreateSecretFile } from './secret-file';

/**
 * Repository tokens are sealed to the infrastructure, not to the control plane (DESIGN.md §8): each infrastructure's
 * runners hold an X25519 key ring, the infrastructure record holds only the public keys, and the API seals a token to
 * the first of them (X25519 + HKDF-SHA256 + AES-256-GCM with a full 16-byte tag), bound to the infrastructure and
 * the gitspace as associated data. The control plane can seal but never open; a sealed token copied onto another
 * gitspace or infrastructure does not open.
 *
 * Text forms: a public key is `x25519:<base64url of 32 bytes>`, a private key `x25519-private:<base64url of 32
 * bytes>`, a sealed token `sealed:v2:<key id>:<base64url of ephemeral public key | iv | tag | ciphertext>`. The key
 * id is a fingerprint of the public key, so nothing else has to be kept in step.
 */

const PUBLIC_PREFIX = 'x25519:';
const PRIVATE_PREFIX = 'x25519-private:';
// PKCS#8 and SPKI wrappings of a raw X25519 key (RFC 8410), so Node can import the 32 raw bytes.
const PKCS8_PREFIX = Buffer.from('302e020100300506032b656e04220420', 'hex');
const SPKI_PREFIX = Buffer.from('302a300506032b656e032100', 'hex');
const HKDF_INFO = Buffer.from('gitspaces repository token v2');
const TAG_LENGTH = 16;

/** What a sealed token is bound to: it opens only for this gitspace of this infrastructure. */
export interface SealBinding {
  infrastructureId: string;
  gitspaceId: string;
}

export class SealedSecretError extends Error {
  override name = 'SealedSecretError';
}

function base64urlKey(encoded: string, what: string): Buffer {
  if (!/^[A-Za-z0-9_-]{43}$/.test(encoded)) throw new SealedSecretError(`${what} must be 32 bytes, base64url-encoded`);
  return Buffer.from(encoded, 'base64url');
}

function rawPublicKey(key: KeyObject): Buffer {
  return Buffer.from(key.export({ format: 'der', type: 'spki' }).subarray(SPKI_PREFIX.length));
}

function publicKeyFromRaw(raw: Buffer): KeyObject {
  return createPublicKey({ key: Buffer.concat([SPKI_PREFIX, raw]), format: 'der', type: 'spki' });
}

/** The key id of a public key: the first 12 characters of its SHA-256, base64url. */
function keyIdOf(raw: Buffer): string {
  return createHash('sha256').update(raw).digest('base64url').slice(0, 12);
}

function associatedData(binding: SealBinding, keyId: string): Buffer {
  return Buffer.from(`gitspaces repository token\0${binding.infrastructureId}\0${binding.gitspaceId}\0${keyId}`);
}

function aeadKey(shared: Buffer, ephemeral: Buffer, recipient: Buffer): Buffer {
  return Buffer.from(hkdfSync('sha256', shared, Buffer.concat([ephemeral, recipient]), HKDF_INFO, 32));
}

/** A runner public key as the infrastructure record holds it. */
export class RunnerPublicKey {
  readonly keyId: string;

  private constructor(
    /** The 32 bytes of the X25519 public key. */
    readonly raw: Buffer,
    private readonly key: KeyObject,
  ) {
    this.keyId = keyIdOf(raw);
  }

  /** Throws a SealedSecretError naming what is wrong with the text. */
  static parse(text: string): RunnerPublicKey {
    if (!text.startsWith(PUBLIC_PREFIX)) {
      throw new SealedSecretError(`a runner public key starts with '${PUBLIC_PREFIX}'`);
    }
    const raw = base64urlKey(text.slice(PUBLIC_PREFIX.length), 'a runner public key');
    return new RunnerPublicKey(raw, publicKeyFromRaw(raw));
  }

  static fromKeyObject(key: KeyObject): RunnerPublicKey {
    return new RunnerPublicKey(rawPublicKey(key), key);
  }

  toString(): string {
    return `${PUBLIC_PREFIX}${this.raw.toString('base64url')}`;
  }

  /** Seals a secret so that only a holder of the matching private key can open it, and only for this binding. */
  seal(plaintext: string, binding: SealBinding): string {
    const ephemeral = generateKeyPairSync('x25519');
    const ephemeralRaw = rawPublicKey(ephemeral.publicKey);
    const shared = diffieHellman({ privateKey: ephemeral.privateKey, publicKey: this.key });
    const iv = randomBytes(12);
    const cipher = createCipheriv('aes-256-gcm', aeadKey(shared, ephemeralRaw, this.raw), iv, {
      authTagLength: TAG_LENGTH,
    });
    cipher.setAAD(associatedData(binding, this.keyId));
    const body = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
    const sealed = Buffer.concat([ephemeralRaw, iv, cipher.getAuthTag(), body]).toString('base64url');
    return `sealed:v2:${this.keyId}:${sealed}`;
  }
}

/**
 * The private keys of one infrastructure's runners (GITSPACES_RUNNER_KEYS or `<dataDir>/runner-keys`): every runner
 * of the infrastructure holds the same ring. It opens a token sealed to any of its keys, so a key can be added before
 * the infrastructure names it and kept until no token sealed to it is left.
 */
export class RunnerKeyRing {
  /** What agent secrets derive from: the first key's private bytes, exported once. */
  private readonly seed: Buffer;

  private constructor(private readonly keys: { private: KeyObject; public: RunnerPublicKey }[]) {
    this.seed = keys[0]!.private.export({ format: 'der', type: 'pkcs8' });
  }

  /** A ring from its text: one private key per line or comma; the first is the one its runners derive secrets from. */
  static parse(text: string): RunnerKeyRing {
    const entries = text
      .split(/[\n,]/)
      .map((line) => line.trim())
      .filter((line) => line !== '' && !line.startsWith('#'));
    if (entries.length === 0) throw new SealedSecretError('the runner key ring holds no key');
    return new RunnerKeyRing(
      entries.map((entry) => {
        if (!entry.startsWith(PRIVATE_PREFIX)) {
          throw new SealedSecretError(`each runner key starts with '${PRIVATE_PREFIX}'`);
        }
        const raw = base64urlKey(entry.slice(PRIVATE_PREFIX.length), 'a runner private key');
        const privateKey = createPrivateKey({ key: Buffer.concat([PKCS8_PREFIX, raw]), format: 'der', type: 'pkcs8' });
        const publicKey = RunnerPublicKey.fromKeyObject(createPublicKey(privateKey));
        return { private: privateKey, public: publicKey };
      }),
    );
  }

  /** A new private key in its text form. */
  static generateKey(): string {
    const { privateKey } = generateKeyPairSync('x25519');
    const der = privateKey.export({ format: 'der', type: 'pkcs8' });
    return `${PRIVATE_PREFIX}${Buffer.from(der.subarray(PKCS8_PREFIX.length)).toString('base64url')}`;
  }

  /** The public keys, in the ring's order: what an operator registers on the infrastructure. */
  publicKeys(): RunnerPublicKey[] {
    return this.keys.map((key) => key.public);
  }

  /** Opens a token sealed to one of this ring's keys for exactly this binding; throws a SealedSecretError otherwise. */
  open(sealed: string, binding: SealBinding): string {
    const match = /^sealed:v2:([A-Za-z0-9_-]{12}):([A-Za-z0-9_-]+)$/.exec(sealed);
    if (!match?.[1] || !match[2]) throw new SealedSecretError('not a sealed token');
    const keyId = match[1];
    const key = this.keys.find((k) => k.public.keyId === keyId);
    if (!key) {
      throw new SealedSecretError(
        `the token was sealed to runner key ${keyId}, which this runner does not hold (it holds ${this.keys.map((k) => k.public.keyId).join(', ')})`,
      );
    }
    const raw = Buffer.from(match[2], 'base64url');
    if (raw.length < 32 + 12 + TAG_LENGTH) throw new SealedSecretError('the sealed token is cut short');
    const ephemeralRaw = raw.subarray(0, 32);
    const shared = diffieHellman({ privateKey: key.private, publicKey: publicKeyFromRaw(ephemeralRaw) });
    const decipher = createDecipheriv(
      'aes-256-gcm',
      aeadKey(shared, ephemeralRaw, key.public.raw),
      raw.subarray(32, 44),
      {
        authTagLength: TAG_LENGTH,
      },
    );
    decipher.setAAD(associatedData(binding, keyId));
    decipher.setAuthTag(raw.subarray(44, 44 + TAG_LENGTH));
    try {
      return Buffer.concat([decipher.update(raw.subarray(44 + TAG_LENGTH)), decipher.final()]).toString('utf8');
    } catch {
      throw new SealedSecretError('the sealed token does not open: it was altered, or sealed for another gitspace');
    }
  }

  /**
   * A secret derived from the ring's first key for one purpose and one subject (the agent secret of a start): every
   * runner of the infrastructure computes the same one, and the control plane, which holds no private key, cannot.
   */
  derive(purpose: string, subject: string): string {
    return createHmac('sha256', this.seed).update(`${purpose}\0${subject}`).digest('base64url');
  }
}

/** Where a runner keeps its key ring when GITSPACES_RUNNER_KEYS does not give it. */
export const RUNNER_KEYS_FILE = 'runner-keys';

/** The runner key ring kept in a data dir, generated on first use (0600, like every secret there). */
export async function loadRunnerKeyRing(dataDir: string): Promise<RunnerKeyRing> {
  return RunnerKeyRing.parse(
    (await readOrCreateSecretFile(path.join(dataDir, RUNNER_KEYS_FILE), RunnerKeyRing.generateKey)).value,
  );
}

/**
 * The secrets key of earlier versions (AES-256-GCM, held by the control plane and the runners), kept only so a runner
 * can still open tokens sealed before tokens were sealed to the infrastructure (`sealed:v1:`). New tokens never use it.
 */
export class LegacySecretsKey {
  private constructor(private readonly key: Buffer) {}

  static fromBase64(encoded: string): LegacySecretsKey {
    const key = Buffer.from(encoded.trim(), 'base64');
    if (key.length !== 32) throw new SealedSecretError('the secrets key must be 32 bytes, base64-encoded');
    return new LegacySecretsKey(key);
  }

  static isSealedWithIt(sealed: string): boolean {
    return sealed.startsWith('sealed:v1:');
  }

  /** Throws when the value was sealed under another key or was altered. */
  unseal(sealed: string): string {
    const match = /^sealed:v1:([A-Za-z0-9_-]+)$/.exec(sealed);
    if (!match?.[1]) throw new SealedSecretError('not a sealed secret');
    const raw = Buffer.from(match[1], 'base64url');
    const decipher = createDecipheriv('aes-256-gcm', this.key, raw.subarray(0, 12), { authTagLength: TAG_LENGTH });
    decipher.setAuthTag(raw.subarray(12, 28));
    try {
      return Buffer.concat([decipher.update(raw.subarray(28)), decipher.final()]).toString('utf8');
    } catch {
      throw new SealedSecretError('the token sealed by an earlier version does not open with this secrets key');
    }
  }
}
