import { randomBytes } from 'node:crypto';
import { mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { defaultPayloadConverter, type Payload } from '@temporalio/common';
import { ConfigError } from './config';
import {
  ENCRYPTED_ENCODING,
  EncryptionCodec,
  KEY_ID_METADATA,
  PayloadKeyRing,
  PayloadRefusedError,
  loadPayloadKeyRing,
} from './payload-codec';

const key = (id: string) => `${id}:${randomBytes(32).toString('base64')}`;
const text = (bytes: Uint8Array | null | undefined) => new TextDecoder().decode(bytes ?? new Uint8Array());
const input = { gitspaceId: 'gs-1', name: 'secret-project', url: 'https://git.example.com/acme/secret.git' };

describe('the payload codec', () => {
  const oldKey = key('old');
  const newKey = key('new');

  it('seals the whole payload (metadata too) under the newest key and opens it again', async () => {
    const codec = new EncryptionCodec(PayloadKeyRing.parse(`${oldKey},${newKey}`));
    const original = defaultPayloadConverter.toPayload(input);
    const [sealed] = await codec.encode([original]);
    expect(text(sealed!.metadata!.encoding)).toBe(ENCRYPTED_ENCODING);
    expect(text(sealed!.metadata![KEY_ID_METADATA])).toBe('new');
    expect(Object.keys(sealed!.metadata!).sort()).toEqual(['encoding', KEY_ID_METADATA]);
    const bytes = Buffer.from(sealed!.data!);
    for (const plain of ['secret-project', 'git.example.com', 'gs-1', 'json/plain']) {
      expect(bytes.includes(plain)).toBe(false);
    }
    const [opened] = await codec.decode([sealed!]);
    expect(defaultPayloadConverter.fromPayload(opened!)).toEqual(input);
    // Two encryptions of one payload differ (a fresh IV each time).
    const [again] = await codec.encode([original]);
    expect(Buffer.from(again!.data!).equals(bytes)).toBe(false);
  });

  it('rotates: a payload sealed under the old key still opens after a new key is added, new ones use the new key', async () => {
    const before = new EncryptionCodec(PayloadKeyRing.parse(oldKey));
    const after = new EncryptionCodec(PayloadKeyRing.parse(`${oldKey},${newKey}`));
    const [fromBefore] = await before.encode([defaultPayloadConverter.toPayload(input)]);
    expect(defaultPayloadConverter.fromPayload((await after.decode([fromBefore!]))[0]!)).toEqual(input);
    const [fromAfter] = await after.encode([defaultPayloadConverter.toPayload(input)]);
    expect(text(fromAfter!.metadata![KEY_ID_METADATA])).toBe('new');
    // A process that has not been given the new key yet cannot read it: add keys everywhere before using them.
    await expect(before.decode([fromAfter!])).rejects.toThrow(PayloadRefusedError);
    // Once the old key is dropped, its payloads are refused.
    const dropped = new EncryptionCodec(PayloadKeyRing.parse(newKey));
    await expect(dropped.decode([fromBefore!])).rejects.toThrow(/unknown key 'old'/);
  });

  it('refuses tampered ciphertext, a tampered tag or IV, and a swapped key id', async () => {
    const codec = new EncryptionCodec(PayloadKeyRing.parse(`${oldKey},${newKey}`));
    const [sealed] = await codec.encode([defaultPayloadConverter.toPayload(input)]);
    const data = sealed!.data!;
    for (const index of [0, 12, Math.floor(data.length / 2), data.length - 1]) {
      const altered = new Uint8Array(data);
      altered[index]! ^= 0x01;
      const error = await codec.decode([{ ...sealed!, data: altered }]).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(PayloadRefusedError);
      expect((error as Error).name).toBe('PayloadRefusedError');
    }
    await expect(codec.decode([{ ...sealed!, data: data.subarray(0, 20) }])).rejects.toThrow(PayloadRefusedError);
    const swapped = { ...sealed!.metadata!, [KEY_ID_METADATA]: new TextEncoder().encode('old') };
    await expect(codec.decode([{ metadata: swapped, data }])).rejects.toThrow(/does not authenticate/);
  });

  it('refuses a payload sealed with a key it does not have, even under a known key id', async () => {
    const codec = new EncryptionCodec(PayloadKeyRing.parse(newKey));
    const attacker = new EncryptionCodec(PayloadKeyRing.parse(key('new')));
    const [forged] = await attacker.encode([defaultPayloadConverter.toPayload({ gitspaceId: 'gs-1' })]);
    await expect(codec.decode([forged!])).rejects.toThrow(PayloadRefusedError);
    const stranger = new EncryptionCodec(PayloadKeyRing.parse(key('elsewhere')));
    const [unknown] = await stranger.encode([defaultPayloadConverter.toPayload({ gitspaceId: 'gs-1' })]);
    await expect(codec.decode([unknown!])).rejects.toThrow(/unknown key 'elsewhere'/);
  });

  it('refuses plaintext payloads of every kind, including one that claims to be encrypted without a key id', async () => {
    const codec = new EncryptionCodec(PayloadKeyRing.parse(newKey));
    const plaintexts: Payload[] = [
      defaultPayloadConverter.toPayload({ gitspaceId: 'gs-1' }),
      defaultPayloadConverter.toPayload(undefined),
      defaultPayloadConverter.toPayload(new Uint8Array([1, 2, 3])),
      { metadata: {}, data: new Uint8Array() },
      {},
      { metadata: { encoding: new TextEncoder().encode(ENCRYPTED_ENCODING) }, data: randomBytes(64) },
    ];
    for (const payload of plaintexts) {
      await expect(codec.decode([payload])).rejects.toThrow(PayloadRefusedError);
    }
    // One refused payload refuses the whole batch.
    const [good] = await codec.encode([defaultPayloadConverter.toPayload(1)]);
    await expect(codec.decode([good!, plaintexts[0]!])).rejects.toThrow(PayloadRefusedError);
  });

  it("passes the server's own marker for an activity cancelled before it started, and nothing like it", async () => {
    const codec = new EncryptionCodec(PayloadKeyRing.parse(newKey));
    const marker = defaultPayloadConverter.toPayload('ACTIVITY_ID_NOT_STARTED');
    expect(await codec.decode([marker])).toEqual([marker]);
    const lookalikes: Payload[] = [
      defaultPayloadConverter.toPayload('ACTIVITY_ID_NOT_STARTED '),
      defaultPayloadConverter.toPayload(['ACTIVITY_ID_NOT_STARTED']),
      { ...marker, metadata: { ...marker.metadata, messageType: new TextEncoder().encode('x') } },
    ];
    for (const payload of lookalikes) {
      await expect(codec.decode([payload])).rejects.toThrow(PayloadRefusedError);
    }
    // It comes with an activity's outcome (the SDK decodes that in the activity's context)...
    const activity = { type: 'activity', namespace: 'default', workflowId: 'gitspace-gs-1', isLocal: false } as const;
    expect(await codec.decode([marker], activity)).toEqual([marker]);
    // ...never as a workflow's own payload: a workflow started or signalled with it is refused like any plaintext.
    const workflow = { type: 'workflow', namespace: 'default', workflowId: 'gitspace-gs-1' } as const;
    await expect(codec.decode([marker], workflow)).rejects.toThrow(PayloadRefusedError);
  });

  it('reads key rings strictly: every problem at once', () => {
    const error = (() => {
      try {
        PayloadKeyRing.parse('a:short,no-colon,b/c:' + randomBytes(32).toString('base64') + ',a:' + 'x'.repeat(44));
      } catch (e) {
        return e;
      }
    })() as ConfigError;
    expect(error).toBeInstanceOf(ConfigError);
    expect(error.problems.join('\n')).toMatch(/entry 2 is not id:base64key/);
    expect(error.problems.join('\n')).toMatch(/key id 'b\/c'/);
    expect(error.problems.join('\n')).toMatch(/key 'a' must be 32 bytes/);
    expect(error.problems.join('\n')).toMatch(/'a' appears twice/);
    expect(() => PayloadKeyRing.parse('  ')).toThrow(ConfigError);
  });

  it('keeps a generated key ring in the data dir, mode 0600, and finds it again', async () => {
    const dataDir = await mkdtemp(path.join(os.tmpdir(), 'payload-keys-'));
    try {
      const first = await loadPayloadKeyRing({ dataDir });
      const second = await loadPayloadKeyRing({ dataDir });
      expect(second.newest.id).toBe(first.newest.id);
      expect(second.newest.key.equals(first.newest.key)).toBe(true);
      expect((await stat(path.join(dataDir, 'payload-keys'))).mode & 0o777).toBe(0o600);
      const given = await loadPayloadKeyRing({ dataDir, keys: newKey });
      expect(given.ids).toEqual(['new']);
    } finally {
      await rm(dataDir, { recursive: true, force: true });
    }
  });

  it('gives parts that start at once one key ring: none reads a file another is still writing', async () => {
    const dataDir = await mkdtemp(path.join(os.tmpdir(), 'payload-keys-'));
    try {
      const rings = await Promise.all(Array.from({ length: 8 }, () => loadPayloadKeyRing({ dataDir })));
      expect(new Set(rings.map((ring) => ring.newest.key.toString('base64'))).size).toBe(1);
      // Only the key ring is left in the data dir (no temporary file).
      expect(await readdir(dataDir)).toEqual(['payload-keys']);
    } finally {
      await rm(dataDir, { recursive: true, force: true });
    }
  });
});
