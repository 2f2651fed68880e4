import { createCipheriv, randomBytes } from 'node:crypto';
import { LegacySecretsKey, RunnerKeyRing, RunnerPublicKey, SealedSecretError } from './sealed-secret';

const binding = { infrastructureId: 'gcp-eu', gitspaceId: 'gs-aaaaaaaaaaaa' };

describe('repository tokens sealed to the infrastructure', () => {
  const ring = RunnerKeyRing.parse(RunnerKeyRing.generateKey());
  // What the control plane holds: the public key's text only.
  const publicText = ring.publicKeys()[0]!.toString();

  it('seals with the public key alone and opens only with the runner ring', () => {
    const sealed = RunnerPublicKey.parse(publicText).seal('ghp_token-1', binding);
    expect(sealed).toMatch(/^sealed:v2:[A-Za-z0-9_-]{12}:[A-Za-z0-9_-]+$/);
    expect(sealed).not.toContain('ghp_token-1');
    expect(sealed.split(':')[2]).toBe(RunnerPublicKey.parse(publicText).keyId);
    expect(ring.open(sealed, binding)).toBe('ghp_token-1');
  });

  it('gives a new ciphertext every time (a fresh ephemeral key and iv)', () => {
    const key = RunnerPublicKey.parse(publicText);
    expect(key.seal('same', binding)).not.toBe(key.seal('same', binding));
  });

  it('does not open for another gitspace or another infrastructure (the binding is associated data)', () => {
    const sealed = RunnerPublicKey.parse(publicText).seal('ghp_token-2', binding);
    expect(() => ring.open(sealed, { ...binding, gitspaceId: 'gs-bbbbbbbbbbbb' })).toThrow(SealedSecretError);
    expect(() => ring.open(sealed, { ...binding, infrastructureId: 'aws-us' })).toThrow(SealedSecretError);
  });

  it('does not open with another ring, and says which key it needs', () => {
    const sealed = RunnerPublicKey.parse(publicText).seal('ghp_token-3', binding);
    const other = RunnerKeyRing.parse(RunnerKeyRing.generateKey());
    expect(() => other.open(sealed, binding)).toThrow(/sealed to runner key .{12}, which this runner does not hold/);
  });

  it('refuses an altered body, a cut-short tag and a forged key id', () => {
    const sealed = RunnerPublicKey.parse(publicText).seal('ghp_token-4', binding);
    const [prefix, version, keyId, body] = sealed.split(':') as [string, string, string, string];
    const raw = Buffer.from(body, 'base64url');
    const flipped = Buffer.from(raw);
    flipped[flipped.length - 1]! ^= 1;
    expect(() => ring.open(`${prefix}:${version}:${keyId}:${flipped.toString('base64url')}`, binding)).toThrow(
      SealedSecretError,
    );
    // The ephemeral key, iv and only 8 bytes of tag: no truncated tag is accepted.
    const cut = raw.subarray(0, 32 + 12 + 8).toString('base64url');
    expect(() => ring.open(`${prefix}:${version}:${keyId}:${cut}`, binding)).toThrow(/cut short/);
    const otherId = RunnerKeyRing.parse(RunnerKeyRing.generateKey()).publicKeys()[0]!.keyId;
    expect(() => ring.open(`${prefix}:${version}:${otherId}:${body}`, binding)).toThrow(SealedSecretError);
  });

  it('opens tokens sealed to any key of a ring being rotated', () => {
    const oldKey = RunnerKeyRing.generateKey();
    const newKey = RunnerKeyRing.generateKey();
    const before = RunnerKeyRing.parse(oldKey).publicKeys()[0]!.seal('old', binding);
    const rotated = RunnerKeyRing.parse(`${newKey}\n${oldKey}\n`);
    const after = rotated.publicKeys()[0]!.seal('new', binding);
    expect([rotated.open(before, binding), rotated.open(after, binding)]).toEqual(['old', 'new']);
  });

  it('derives the same agent secret on every runner of the ring, and another on another ring', () => {
    const text = RunnerKeyRing.generateKey();
    const a = RunnerKeyRing.parse(text).derive('agent', 'gs-1/run-1');
    expect(RunnerKeyRing.parse(text).derive('agent', 'gs-1/run-1')).toBe(a);
    expect(RunnerKeyRing.parse(text).derive('agent', 'gs-1/run-2')).not.toBe(a);
    expect(ring.derive('agent', 'gs-1/run-1')).not.toBe(a);
  });

  it.each([
    ['no prefix', 'AAAA'],
    ['a short key', 'x25519:AAAA'],
    ['a private key', RunnerKeyRing.generateKey()],
  ])('refuses a public key with %s', (_what, text) => {
    expect(() => RunnerPublicKey.parse(text)).toThrow(SealedSecretError);
  });

  it('refuses an empty ring or a ring line that is not a private key', () => {
    expect(() => RunnerKeyRing.parse('# nothing\n')).toThrow(/holds no key/);
    expect(() => RunnerKeyRing.parse(publicText)).toThrow(/starts with 'x25519-private:'/);
  });
});

describe('tokens sealed by earlier versions', () => {
  it('still open with the legacy secrets key, and only with it', () => {
    const key = randomBytes(32);
    // The v1 format: iv | tag | body under AES-256-GCM with the installation's secrets key.
    const iv = randomBytes(12);
    const cipher = createCipheriv('aes-256-gcm', key, iv);
    const body = Buffer.concat([cipher.update('ghp_old', 'utf8'), cipher.final()]);
    const sealed = `sealed:v1:${Buffer.concat([iv, cipher.getAuthTag(), body]).toString('base64url')}`;
    expect(LegacySecretsKey.isSealedWithIt(sealed)).toBe(true);
    expect(LegacySecretsKey.fromBase64(key.toString('base64')).unseal(sealed)).toBe('ghp_old');
    expect(() => LegacySecretsKey.fromBase64(randomBytes(32).toString('base64')).unseal(sealed)).toThrow(
      SealedSecretError,
    );
  });
});
