import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { fakeToken, startStubServer, testCli, type StubServer } from '../test/support/cli-stub';
import { createApiClient } from './api-client';
import { sshCommand } from './commands/ssh';
import { ApiError } from './errors';
import { lifetimeMs, openSshTunnel, renewUrlOf, SshError } from './ssh-tunnel';

const GITSPACE = { id: 'gs-abc', name: 'api' };
const TUNNEL_PATH = '/gitspaces/gs-abc/_gitspaces/ssh';

describe('the SSH tunnel (gitspaces ssh --stdio)', () => {
  let stub: StubServer;
  let configDir: string;
  /** Lifetime of the tokens the stand-in API grants. */
  let lifetimeSeconds: number;
  let granted: string[];

  beforeEach(async () => {
    stub = await startStubServer();
    configDir = await mkdtemp(path.join(os.tmpdir(), 'gitspaces-tunnel-test-'));
    lifetimeSeconds = 600;
    granted = [];
    stub.answer = (request) => {
      if (request.method === 'GET' && request.path === '/api/v1/gitspaces/gs-abc') {
        return { status: 200, body: { ...GITSPACE, state: 'running' } };
      }
      if (request.method === 'POST' && request.path === '/api/v1/gitspaces/gs-abc/access') {
        const token = fakeToken(lifetimeSeconds, `t${granted.length}`);
        granted.push(token);
        return {
          status: 200,
          body: {
            url: `${stub.url.replace('http', 'ws')}${TUNNEL_PATH}`,
            token,
            expiresAt: new Date(Date.now() + lifetimeSeconds * 1000).toISOString(),
            hostKey: 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGitspaces',
          },
        };
      }
      if (request.method === 'POST' && request.path === `${TUNNEL_PATH}/renew`) return { status: 204 };
      return { status: 404, body: { error: { code: 'not_found', message: 'no such route' } } };
    };
    stub.upgradeHeaders = { 'x-gitspaces-tunnel-id': 'tunnel-1' };
    // An echo server that answers each message in upper case: what went through came back through.
    stub.onSocket = (ws) => ws.on('message', (data: Buffer) => ws.send(Buffer.from(data.toString().toUpperCase())));
  });
  afterEach(async () => {
    await stub.close();
    await rm(configDir, { recursive: true, force: true });
  });

  const tunnel = () => {
    const cli = testCli({ url: stub.url, configDir });
    const client = createApiClient({ url: stub.url, token: 'api-token' });
    const notes: string[] = [];
    const done = openSshTunnel(client, GITSPACE, {
      stdin: cli.stdin,
      stdout: cli.stdout,
      note: (line) => notes.push(line),
    });
    return { ...cli, notes, done };
  };
  const until = async (condition: () => boolean, what: string) => {
    const deadline = Date.now() + 5_000;
    while (!condition()) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  };

  it('asks for ssh access, opens the WebSocket with the token as a bearer and pipes stdin → socket → stdout', async () => {
    const { stdin, out, done } = tunnel();
    await until(() => stub.upgrades.length === 1, 'the upgrade');
    stdin.write('ssh-2.0-client\r\n');
    await until(() => out() === 'SSH-2.0-CLIENT\r\n', 'the echo');
    expect(stub.requests[0]).toMatchObject({ method: 'POST', body: { scope: 'ssh' } });
    expect(stub.requests[0]!.headers.authorization).toBe('Bearer api-token');
    expect(stub.upgrades[0]).toMatchObject({ path: TUNNEL_PATH });
    expect(stub.upgrades[0]!.headers.authorization).toBe(`Bearer ${granted[0]}`);
    // ssh closing its end ends the tunnel quietly.
    stdin.end();
    await expect(done).resolves.toBeUndefined();
  });

  it('loses nothing the server sends at once, in the same packet as its 101 (an SSH server speaks first)', async () => {
    stub.onSocket = (ws) => ws.send(Buffer.from('SSH-2.0-server\r\n'));
    const { stdin, out, done } = tunnel();
    await until(() => out() === 'SSH-2.0-server\r\n', 'the banner');
    stdin.end();
    await done;
  });

  it('renews at 80 % of the token lifetime with a fresh ssh token and the tunnel id, again and again', async () => {
    lifetimeSeconds = 2;
    const { stdin, done } = tunnel();
    await until(() => stub.upgrades.length === 1, 'the upgrade');
    const opened = stub.upgrades[0]!.at;
    const renewals = () => stub.requests.filter((r) => r.path.endsWith('/renew'));
    await until(() => renewals().length === 2, 'two renewals');
    const [first, second] = renewals();
    expect(first!.at - opened).toBeGreaterThanOrEqual(1_500);
    expect(first!.at - opened).toBeLessThan(2_000);
    expect(second!.at - first!.at).toBeGreaterThanOrEqual(1_500);
    expect(second!.at - first!.at).toBeLessThan(2_000);
    expect(first!.headers['x-gitspaces-tunnel-id']).toBe('tunnel-1');
    // Each renewal carries a token granted for it, never the first one again.
    expect([first!.headers.authorization, second!.headers.authorization]).toEqual([
      `Bearer ${granted[1]}`,
      `Bearer ${granted[2]}`,
    ]);
    stdin.end();
    await done;
    // Once the tunnel is over, nothing is renewed any more.
    await new Promise((resolve) => setTimeout(resolve, 1_700));
    expect(renewals()).toHaveLength(2);
  });

  it('says once why a renewal was refused and stops renewing (the gateway then ends the tunnel at its expiry)', async () => {
    lifetimeSeconds = 1;
    const answer = stub.answer;
    stub.answer = (request) =>
      request.path.endsWith('/renew')
        ? { status: 401, body: { error: { code: 'token_revoked', message: 'the access token was revoked' } } }
        : answer(request);
    const { stdin, notes, done } = tunnel();
    await until(() => notes.length === 1, 'the note');
    expect(notes[0]).toMatch(
      /^gitspaces: could not renew the SSH tunnel to gitspace 'api' \(the access token was revoked\); it ends at /,
    );
    await new Promise((resolve) => setTimeout(resolve, 1_200));
    expect(stub.requests.filter((r) => r.path.endsWith('/renew'))).toHaveLength(1);
    stdin.end();
    await done;
  });

  it('tries a renewal the gateway was too busy for again at half the time left; a refusal is not tried again', async () => {
    // The renewal's timers and clock are the test's to move (a token lives 10 minutes here); the network is real.
    jest.useFakeTimers({ doNotFake: ['nextTick', 'setImmediate', 'queueMicrotask', 'performance', 'hrtime'] });
    /** `until` for fake timers: the real time is performance's. */
    const ticks = async (condition: () => boolean, what: string) => {
      const deadline = performance.now() + 5_000;
      while (!condition()) {
        if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`);
        await new Promise((resolve) => setImmediate(resolve));
      }
    };
    /** Real time for a renewal the timers started to reach the stand-in, if one was started. */
    const settle = () => {
      const end = performance.now() + 300;
      return ticks(() => performance.now() > end, 'time');
    };
    try {
      const renewAnswers = [503, 401];
      const answer = stub.answer;
      stub.answer = (request) =>
        request.path.endsWith('/renew')
          ? { status: renewAnswers.shift() ?? 204, body: { error: { code: 'x', message: 'not now' } } }
          : answer(request);
      const { stdin, notes, done } = tunnel();
      const renewals = () => stub.requests.filter((r) => r.path.endsWith('/renew'));
      await ticks(() => stub.upgrades.length === 1, 'upgrade');
      await jest.advanceTimersByTimeAsync(480_000 - 1_000);
      await settle();
      expect(renewals()).toHaveLength(0);
      await jest.advanceTimersByTimeAsync(1_000);
      await ticks(() => renewals().length === 1, 'first renewal');
      // Busy (503): about 120 s were left, so again in about 60 s.
      await jest.advanceTimersByTimeAsync(55_000);
      await settle();
      expect(renewals()).toHaveLength(1);
      await jest.advanceTimersByTimeAsync(10_000);
      await ticks(() => renewals().length === 2, 'second renewal');
      // Refused (401): said once, never tried again.
      await ticks(() => notes.length === 1, 'the note');
      expect(notes[0]).toMatch(/could not renew the SSH tunnel to gitspace 'api' \(not now\)/);
      await jest.advanceTimersByTimeAsync(600_000);
      await settle();
      expect(renewals()).toHaveLength(2);
      stdin.end();
      await done;
    } finally {
      jest.useRealTimers();
    }
  });

  it('tells ssh the tunnel was cut when the gateway closes it first (a stop), and ends', async () => {
    stub.onSocket = (ws) => setTimeout(() => ws.terminate(), 100);
    const { stdin, done } = tunnel();
    await expect(done).rejects.toThrow(SshError);
    await expect(done).rejects.toThrow(
      "the SSH tunnel to gitspace 'api' was closed (the connection was lost); if the gitspace was stopped, start it again",
    );
    // Its stdin is let go of, so the ProxyCommand process can exit.
    expect(stdin.destroyed).toBe(true);
  });

  it('leaves a stopped gitspace stopped without --start, saying how to start it', async () => {
    stub.answer = () => ({ status: 200, body: { ...GITSPACE, state: 'stopped' } });
    const { context } = testCli({ url: stub.url, configDir });
    const connecting = sshCommand(context, 'gs-abc', [], { stdio: true });
    await expect(connecting).rejects.toThrow(
      "gitspace 'api' is stopped: start it with `gitspaces start gs-abc`, or add --start",
    );
    await expect(connecting).rejects.toMatchObject({ exitCode: 3 });
    expect(stub.requests.map((r) => `${r.method} ${r.path}`)).toEqual(['GET /api/v1/gitspaces/gs-abc']);
  });

  it("fails with the API's refusal (exit 3) before any upgrade", async () => {
    stub.answer = () => ({
      status: 409,
      body: { error: { code: 'no_ssh_keys', message: 'register a key: gitspaces ssh-keys add' } },
    });
    const { done } = tunnel();
    await expect(done).rejects.toThrow(ApiError);
    await expect(done).rejects.toMatchObject({ code: 'no_ssh_keys', exitCode: 3 });
    expect(stub.upgrades).toHaveLength(0);
  });

  it("fails with the gateway's refusal of the upgrade (exit 3), its code and message", async () => {
    stub.admitUpgrade = () => ({
      status: 403,
      body: { error: { code: 'token_scope', message: 'this token is not for SSH' } },
    });
    const { done } = tunnel();
    await expect(done).rejects.toThrow('this token is not for SSH');
    await expect(done).rejects.toMatchObject({ code: 'token_scope', status: 403, exitCode: 3 });
  });

  it("ends the real command with exit 3 and the gateway's message on stderr, which OpenSSH shows", async () => {
    stub.admitUpgrade = () => ({
      status: 401,
      body: {
        error: { code: 'token_revoked', message: "this access token is from before gitspace 'gs-abc' restarted" },
      },
    });
    const child = spawn(
      process.execPath,
      [
        '--import',
        pathToFileURL(require.resolve('tsx')).href,
        path.join(__dirname, 'main.ts'),
        'ssh',
        '--stdio',
        'gs-abc',
      ],
      {
        env: { PATH: process.env.PATH, GITSPACES_URL: stub.url, GITSPACES_TOKEN: 'api-token', NODE_OPTIONS: '' },
        stdio: ['pipe', 'pipe', 'pipe'],
      },
    );
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const code = await new Promise<number | null>((resolve) => child.once('close', resolve));
    expect({ code, stdout, stderr }).toEqual({
      code: 3,
      stdout: '',
      stderr: "error: this access token is from before gitspace 'gs-abc' restarted\n",
    });
  });
});

describe('tunnel helpers', () => {
  it("renews at the gateway's renew path beside the tunnel's, over http(s)", () => {
    expect(renewUrlOf('ws://gw:3001/gitspaces/gs-a/_gitspaces/ssh')).toBe(
      'http://gw:3001/gitspaces/gs-a/_gitspaces/ssh/renew',
    );
    expect(renewUrlOf('wss://gw/gitspaces/gs-a/_gitspaces/ssh')).toBe('https://gw/gitspaces/gs-a/_gitspaces/ssh/renew');
  });

  it("takes a token's lifetime from its own iat and exp, whatever the local clock says; else from expiresAt", () => {
    expect(lifetimeMs({ token: fakeToken(600), expiresAt: '2000-01-01T00:00:00Z' })).toBe(600_000);
    const expiresAt = new Date(Date.now() + 30_000).toISOString();
    expect(lifetimeMs({ token: 'opaque', expiresAt })).toBeGreaterThan(29_000);
    expect(lifetimeMs({ token: 'opaque', expiresAt })).toBeLessThanOrEqual(30_000);
  });
});
