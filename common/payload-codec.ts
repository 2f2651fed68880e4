import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import path from 'node:path';
import type { Payload, PayloadCodec, SerializationContext } from '@temporalio/common';
import { temporal } from '@temporalio/proto';
import { ConfigError } from './config';
import { readOrCreateSecretFile } from './secret-file';

/**
 * Payload encryption: Temporal is an untrusted courier (DESIGN §8). Every payload a Gitspaces client or worker sends
 * is the whole serialized original Payload, sealed with AES-256-GCM under the newest key of a key ring; every payload
 * it receives must be sealed with a key of that ring, or it is refused. A workflow or activity started straight on
 * Temporal by someone without a key therefore never reaches workflow or activity code.
 */
export const ENCRYPTED_ENCODING = 'binary/encrypted';
export const KEY_ID_METADATA = 'encryption-key-id';
/** The environment variable that gives the key ring: `id:base64key` pairs, comma-separated, newest last. */
export const PAYLOAD_KEYS_ENV = 'GITSPACES_PAYLOAD_KEYS';
/** Where the embedded default keeps its generated key ring, in the same format. */
export const PAYLOAD_KEYS_FILE = 'payload-keys';

const IV_BYTES = 12;
const TAG_BYTES = 16;
const KEY_BYTES = 32;
const KEY_ID = /^[A-Za-z0-9._-]{1,64}$/;
const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** A payload this process will not hand to workflow or activity code: not encrypted, unknown key, or altered. */
export class PayloadRefusedError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'PayloadRefusedError';
  }
}

export interface PayloadKey {
  id: string;
  key: Buffer;
}

/** Several keys with ids: encrypt with the newest (the last), decrypt with any. */
export class PayloadKeyRing {
  private readonly byId: ReadonlyMap<string, Buffer>;
  readonly newest: PayloadKey;

  constructor(keys: readonly PayloadKey[]) {
    const problems = keyRingProblems(keys);
    if (problems.length > 0) throw new ConfigError(problems);
    this.byId = new Map(keys.map((k) => [k.id, k.key]));
    this.newest = keys[keys.length - 1]!;
  }

  /** `id:base64key,id:base64key` (newest last), as in GITSPACES_PAYLOAD_KEYS and the payload-keys file. */
  static parse(text: string, source = PAYLOAD_KEYS_ENV): PayloadKeyRing {
    const problems: string[] = [];
    const keys: PayloadKey[] = [];
    const entries = text
      .split(/[,\n]/)
      .map((entry) => entry.trim())
      .filter(Boolean);
    if (entries.length === 0) problems.push(`${source} names no key (expected id:base64key,…, newest last)`);
    for (const [index, entry] of entries.entries()) {
      const colon = entry.indexOf(':');
      if (colon < 0) {
        problems.push(`${source}: entry ${index + 1} is not id:base64key`);
        continue;
      }
      const id = entry.slice(0, colon);
      const encoded = entry.slice(colon + 1);
      if (!/^[A-Za-z0-9+/]+={0,2}$/.test(encoded)) {
        problems.push(`${source}: key '${id}' is not base64`);
        continue;
      }
      keys.push({ id, key: Buffer.from(encoded, 'base64') });
    }
    problems.push(...keyRingProblems(keys).map((p) => `${source}: ${p}`));
    if (problems.length > 0) throw new ConfigError(problems);
    return new PayloadKeyRing(keys);
  }

  /** A one-key ring's text with a fresh random key. */
  static generateText(): string {
    return `${new Date().toISOString().slice(0, 10).replaceAll('-', '')}-${randomBytes(4).toString('hex')}:${randomBytes(KEY_BYTES).toString('base64')}`;
  }

  key(id: string): Buffer | undefined {
    return this.byId.get(id);
  }

  get ids(): string[] {
    return [...this.byId.keys()];
  }
}

function keyRingProblems(keys: readonly PayloadKey[]): string[] {
  const problems: string[] = [];
  if (keys.length === 0) problems.push('a payload key ring needs at least one key');
  const seen = new Set<string>();
  for (const { id, key } of keys) {
    if (!KEY_ID.test(id)) problems.push(`key id '${id}' must be 1-64 letters, digits, '.', '_' or '-'`);
    if (seen.has(id)) problems.push(`key id '${id}' appears twice`);
    seen.add(id);
    if (key.length !== KEY_BYTES) problems.push(`key '${id}' must be ${KEY_BYTES} bytes (AES-256), got ${key.length}`);
  }
  return problems;
}

/**
 * The key ring a process uses: GITSPACES_PAYLOAD_KEYS when given (read by the process's `main`), else the one kept in
 * `<dataDir>/payload-keys` (mode 0600), generated on first use — the embedded default, where every part shares the
 * data dir.
 */
export async function loadPayloadKeyRing(options: { dataDir: string; keys?: string }): Promise<PayloadKeyRing> {
  if (options.keys !== undefined) return PayloadKeyRing.parse(options.keys);
  const file = path.join(options.dataDir, PAYLOAD_KEYS_FILE);
  const { value } = await readOrCreateSecretFile(file, PayloadKeyRing.generateText);
  return PayloadKeyRing.parse(value, file);
}

/** AES-256-GCM over the protobuf-encoded original Payload; the key id is bound as associated data. */
export class EncryptionCodec implements PayloadCodec {
  constructor(private readonly ring: PayloadKeyRing) {}

  async encode(payloads: Payload[]): Promise<Payload[]> {
    const { id, key } = this.ring.newest;
    return payloads.map((payload) => {
      const plain = temporal.api.common.v1.Payload.encode(payload).finish();
      const iv = randomBytes(IV_BYTES);
      const cipher = createCipheriv('aes-256-gcm', key, iv);
      cipher.setAAD(encoder.encode(id));
      const sealed = Buffer.concat([iv, cipher.update(plain), cipher.final(), cipher.getAuthTag()]);
      return {
        metadata: { encoding: encoder.encode(ENCRYPTED_ENCODING), [KEY_ID_METADATA]: encoder.encode(id) },
        data: new Uint8Array(sealed),
      };
    });
  }

  async decode(payloads: Payload[], context?: SerializationContext): Promise<Payload[]> {
    // The server's own marker comes with an activity's outcome, never among a workflow's own payloads (its input,
    // signals, queries): there, as everywhere else, plaintext is refused.
    const markerPossible = context?.type !== 'workflow';
    return payloads.map((payload) => (markerPossible && isServerMarker(payload) ? payload : this.decodeOne(payload)));
  }

  private decodeOne(payload: Payload): Payload {
    const encoding = payload.metadata?.encoding;
    if (!encoding || decoder.decode(encoding) !== ENCRYPTED_ENCODING) {
      const shown = encoding ? `'${decoder.decode(encoding).slice(0, 40)}'` : 'none';
      throw new PayloadRefusedError(`refused a payload that is not encrypted (encoding ${shown})`);
    }
    const rawId = payload.metadata?.[KEY_ID_METADATA];
    const id = rawId ? decoder.decode(rawId) : '';
    const key = this.ring.key(id);
    if (!key) throw new PayloadRefusedError(`refused a payload encrypted with an unknown key '${id.slice(0, 64)}'`);
    const data = payload.data ?? new Uint8Array();
    if (data.length < IV_BYTES + TAG_BYTES) throw new PayloadRefusedError('refused a payload too short to be sealed');
    const iv = data.subarray(0, IV_BYTES);
    const tag = data.subarray(data.length - TAG_BYTES);
    const decipher = createDecipheriv('aes-256-gcm', key, iv, { authTagLength: TAG_BYTES });
    decipher.setAAD(encoder.encode(id));
    decipher.setAuthTag(tag);
    let plain: Buffer;
    try {
      plain = Buffer.concat([decipher.update(data.subarray(IV_BYTES, data.length - TAG_BYTES)), decipher.final()]);
    } catch {
      throw new PayloadRefusedError(`refused a payload that does not authenticate under key '${id}'`);
    }
    return temporal.api.common.v1.Payload.decode(plain);
  }
}

/**
 * The module whose `failureConverter` every client and worker uses (common/failure-converter.ts): failure messages and
 * stack traces go into encoded attributes, which the codec seals. The workflow bundle must name it too
 * (workers/workflow-bundle.ts), or workflow code fails workflows with plaintext messages.
 */
export const FAILURE_CONVERTER_PATH = require.resolve('./failure-converter');

/** The data converter every Gitspaces Temporal client and worker uses. */
export function payloadDataConverter(codec: PayloadCodec): {
  payloadCodecs: PayloadCodec[];
  failureConverterPath: string;
} {
  return { payloadCodecs: [codec], failureConverterPath: FAILURE_CONVERTER_PATH };
}

/**
 * Payloads that the Temporal server writes itself, which no codec ever saw: the details of an activity cancelled before
 * any worker started it. Each is one fixed value, passed through as is, and only outside a workflow's own payloads
 * (the SDK tells the codec whose payloads it decodes, not where in a message they sit); nothing else unencrypted is.
 */
const SERVER_MARKERS = new Set(['"ACTIVITY_ID_NOT_STARTED"']);

function isServerMarker(payload: Payload): boolean {
  const encoding = payload.metadata?.encoding;
  return (
    encoding !== undefined &&
    encoding !== null &&
    decoder.decode(encoding) === 'json/plain' &&
    Object.keys(payload.metadata ?? {}).length === 1 &&
    SERVER_MARKERS.has(decoder.decode(payload.data ?? new Uint8Array()))
  );
}
