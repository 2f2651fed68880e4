import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { utils } from 'ssh2';
import { ed25519PublicKey, sshString } from '../test/support/ssh-keys';
import { MAX_SSH_PUBLIC_KEY_BYTES, parseOpenSshPublicKey, sshFingerprint } from './ssh-public-key';

const line = (type: string, blob: Buffer, comment = '') => `${type} ${blob.toString('base64')}${comment}`;
const blobOf = (publicLine: string) => Buffer.from(publicLine.split(' ')[1]!, 'base64');

describe('parseOpenSshPublicKey', () => {
  it.each([
    ['ssh-ed25519', ed25519PublicKey('ada@laptop'), undefined],
    ['ecdsa-sha2-nistp256', utils.generateKeyPairSync('ecdsa', { bits: 256, comment: 'ada@laptop' }).public, undefined],
    ['ecdsa-sha2-nistp384', utils.generateKeyPairSync('ecdsa', { bits: 384, comment: 'ada@laptop' }).public, undefined],
    ['ecdsa-sha2-nistp521', utils.generateKeyPairSync('ecdsa', { bits: 521, comment: 'ada@laptop' }).public, undefined],
    ['ssh-rsa', utils.generateKeyPairSync('rsa', { bits: 2048, comment: 'ada@laptop' }).public, 2048],
  ])('accepts %s with its comment, fingerprint and size', (type, publicLine, bits) => {
    const parsed = parseOpenSshPublicKey(`  ${publicLine}\n`);
    expect(parsed).toEqual({
      type,
      blob: blobOf(publicLine),
      comment: 'ada@laptop',
      fingerprint: sshFingerprint(blobOf(publicLine)),
      ...(bits ? { bits } : {}),
    });
    expect(parsed.fingerprint).toMatch(/^SHA256:[A-Za-z0-9+/]{43}$/);
  });

  it('reads what ssh-keygen writes, to the fingerprint it prints', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'ssh-public-key-'));
    const key = path.join(dir, 'id_rsa');
    execFileSync('ssh-keygen', ['-q', '-t', 'rsa', '-b', '3072', '-N', '', '-C', 'ada with spaces', '-f', key]);
    const parsed = parseOpenSshPublicKey(readFileSync(`${key}.pub`, 'utf8'));
    const printed = execFileSync('ssh-keygen', ['-l', '-E', 'sha256', '-f', `${key}.pub`])
      .toString()
      .split(' ');
    expect(parsed).toMatchObject({ type: 'ssh-rsa', bits: 3072, comment: 'ada with spaces' });
    expect(parsed.fingerprint).toBe(printed[1]);
  });

  it('accepts a key without a comment', () => {
    const [type, base64] = ed25519PublicKey().split(' ');
    expect(parseOpenSshPublicKey(`${type} ${base64}`).comment).toBe('');
  });

  const ed25519 = blobOf(ed25519PublicKey());
  const p384 = blobOf(utils.generateKeyPairSync('ecdsa', { bits: 384 }).public);

  it.each([
    ['an empty line', '', /is empty/],
    ['text that is not a key', 'hello world', /not an OpenSSH public key/],
    ['a word alone', 'ssh-ed25519', /not an OpenSSH public key/],
    ['a private key', utils.generateKeyPairSync('ed25519').private, /private key/],
    ['authorized_keys options before the key', `no-pty ${line('ssh-ed25519', ed25519)}`, /options/],
    ['two lines', `${line('ssh-ed25519', ed25519)}\n${line('ssh-ed25519', ed25519)}`, /one line/],
    ['a control character in the comment', line('ssh-ed25519', ed25519, ' ada\u0007'), /control character/],
    ['base64 that is not canonical', `ssh-ed25519 ${ed25519.toString('base64')}!`, /base64/],
    ['a truncated key', line('ssh-ed25519', ed25519.subarray(0, ed25519.length - 2)), /malformed/],
    ['trailing bytes after the key', line('ssh-ed25519', Buffer.concat([ed25519, Buffer.from([1, 2])])), /malformed/],
    ['an RSA type over an Ed25519 key', line('ssh-rsa', ed25519), /says ssh-rsa but the key is ssh-ed25519/],
    ['a P-256 type over a P-384 key', line('ecdsa-sha2-nistp256', p384), /says ecdsa-sha2-nistp256/],
    [
      'a P-384 key whose curve field names another curve',
      line('ecdsa-sha2-nistp384', Buffer.from(p384).fill('nistp256', 4 + 19 + 4, 4 + 19 + 4 + 8)),
      /malformed/,
    ],
    [
      'a security-key (sk-) key',
      line(
        'sk-ssh-ed25519@openssh.com',
        Buffer.concat([sshString('sk-ssh-ed25519@openssh.com'), sshString(Buffer.alloc(32, 7)), sshString('ssh:')]),
      ),
      /security-key/,
    ],
    [
      'a DSA key',
      line(
        'ssh-dss',
        Buffer.concat(
          ['ssh-dss', Buffer.alloc(129, 1), Buffer.alloc(21, 1), Buffer.alloc(128, 2), Buffer.alloc(128, 3)].map(
            sshString,
          ),
        ),
      ),
      /DSA/,
    ],
    ['an RSA key of 1024 bits', utils.generateKeyPairSync('rsa', { bits: 1024 }).public, /1024 bits.*2048/],
    ['a certificate', line('ssh-ed25519-cert-v01@openssh.com', ed25519), /certificate/],
    ['a type nobody knows', line('ssh-foo', ed25519), /supported type \('ssh-foo'\)/],
    ['a line over 8 KiB', `${line('ssh-ed25519', ed25519)} ${'a'.repeat(MAX_SSH_PUBLIC_KEY_BYTES)}`, /8 KiB/],
  ])('refuses %s, saying why', (_what, text, reason) => {
    expect(() => parseOpenSshPublicKey(text)).toThrow(reason);
  });

  it('refuses an RSA key ssh-keygen made too small', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'ssh-public-key-'));
    const key = path.join(dir, 'small');
    execFileSync('ssh-keygen', ['-q', '-t', 'rsa', '-b', '1024', '-N', '', '-f', key]);
    expect(() => parseOpenSshPublicKey(readFileSync(`${key}.pub`, 'utf8'))).toThrow(/1024 bits/);
  });
});
