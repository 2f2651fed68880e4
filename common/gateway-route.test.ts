import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { decodePathFully, gatewayPathKind } from './gateway-route';
import { sshFingerprint } from './ssh-public-key';

describe('gatewayPathKind', () => {
  it.each([
    ['/_gitspaces/ssh', 'ssh'],
    ['/_GITSPACES/SSH', 'ssh'],
    ['//_gitspaces//ssh/', 'ssh'],
    ['/_gitspaces/ssh/renew', 'ssh-renew'],
    ['/_Gitspaces/Ssh/Renew/', 'ssh-renew'],
    ['/_gitspaces', 'reserved'],
    ['/_gitspaces/', 'reserved'],
    ['/_gitspaces/ssh/other', 'reserved'],
    ['/_gitspaces/ssh/renew/more', 'reserved'],
    ['/_gitspaces/terminal', 'reserved'],
    ['/', 'ide'],
    ['/ssh', 'ide'],
    ['/x/_gitspaces/ssh', 'ide'],
    ['/_gitspacesx/ssh', 'ide'],
    ['/_x/ssh', 'ide'],
    ['/_agent/route', 'agent-private'],
    ['//_AGENT', 'agent-private'],
    ['/_agentx', 'agent-private'],
    ['/x/_agent/route', 'ide'],
  ])('%s is %s', (decoded, kind) => {
    expect(gatewayPathKind(decoded)).toBe(kind);
  });

  it('classifies escaped spellings once decoded', () => {
    expect(gatewayPathKind(decodePathFully('/%5Fgitspaces/%53SH')!)).toBe('ssh');
    expect(gatewayPathKind(decodePathFully('/%255fgitspaces/ssh')!)).toBe('ssh');
    expect(gatewayPathKind(decodePathFully('/%255Fagent/route')!)).toBe('agent-private');
  });
});

describe('sshFingerprint', () => {
  it('is the fingerprint ssh-keygen prints', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'fingerprint-'));
    const key = path.join(dir, 'key');
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', key]);
    const blob = Buffer.from(readFileSync(`${key}.pub`, 'utf8').split(' ')[1]!, 'base64');
    const printed = execFileSync('ssh-keygen', ['-l', '-E', 'sha256', '-f', `${key}.pub`])
      .toString()
      .split(' ')[1];
    expect(sshFingerprint(blob)).toBe(printed);
  });
});
