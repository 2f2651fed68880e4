import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Client, utils, type ClientChannel, type ConnectConfig, type ParsedKey, type SFTPWrapper } from 'ssh2';
import { WebSocket, createWebSocketStream } from 'ws';
import { ROUTE_SECRET_HEADER, SSH_KEYS_HEADER } from '../../common/gateway-route';
import { silentLogger } from '../../common/logger';
import { sshFingerprint } from '../../common/ssh-public-key';
import { serveAgent, type ServedAgent } from '../../test/support/agent';
import { upgradeStatus } from '../../test/support/websocket';
import { hostKeyFile, newEd25519PrivateKey } from './host-key';
import { SFTP_SERVER_PATHS } from './session';

const AGENT_SECRET = 'agent-secret-of-the-ssh-test';
const SSH_PATH = '/_gitspaces/ssh';

/** A user's key pair: the private key for the client, the fingerprint the gateway would list. */
function userKey(): { privateKey: string; fingerprint: string } {
  const privateKey = newEd25519PrivateKey();
  return { privateKey, fingerprint: sshFingerprint((utils.parseKey(privateKey) as ParsedKey).getPublicSSH()) };
}

/**
 * An SSH client over a WebSocket to the agent. The stream is made with the socket, before it opens: the server's SSH
 * greeting may arrive in the same read as the 101 answer, and a message nobody listens for yet is lost.
 */
function connectSsh(
  url: string,
  headers: Record<string, string>,
  config: Omit<ConnectConfig, 'sock'>,
): Promise<Client> {
  const sock = createWebSocketStream(new WebSocket(`${url.replace('http', 'ws')}${SSH_PATH}`, { headers }));
  const client = new Client();
  return new Promise((resolve, reject) => {
    client.once('ready', () => resolve(client));
    client.once('error', reject);
    client.once('close', () => reject(new Error('closed before authentication')));
    client.connect({ sock, username: 'gitspace', readyTimeout: 20_000, ...config });
  });
}

/** Runs a command; resolves with its output and how it ended. */
function run(
  client: Client,
  command: string,
  options: { pty?: boolean; env?: Record<string, string> } = {},
): Promise<{ stdout: string; stderr: string; code?: number; signal?: string }> {
  return new Promise((resolve, reject) => {
    client.exec(command, { pty: options.pty, env: options.env }, (error, channel) => {
      if (error) return reject(error);
      collect(channel).then(resolve, reject);
    });
  });
}

function collect(channel: ClientChannel): Promise<{ stdout: string; stderr: string; code?: number; signal?: string }> {
  return new Promise((resolve) => {
    let stdout = '';
    let stderr = '';
    let code: number | undefined;
    let signal: string | undefined;
    channel.on('data', (data: Buffer) => (stdout += data.toString()));
    channel.stderr.on('data', (data: Buffer) => (stderr += data.toString()));
    channel.on('exit', (exitCode: number | null, exitSignal?: string) => {
      code = exitCode ?? undefined;
      signal = exitSignal;
    });
    channel.on('close', () => resolve({ stdout, stderr, code, signal }));
  });
}

const sftpOf = (client: Client) =>
  new Promise<SFTPWrapper>((resolve, reject) => client.sftp((error, sftp) => (error ? reject(error) : resolve(sftp))));

describe('SSH into a gitspace, over the agent door (issue 15, part 1)', () => {
  let root: string;
  let home: string;
  let workspace: string;
  let agent: ServedAgent;
  let route: Record<string, string>;
  let hostKey: string;
  const alice = userKey();
  const mallory = userKey();
  const clients: Client[] = [];
  const asAlice = (keys = alice.fingerprint) => ({ ...route, [SSH_KEYS_HEADER]: keys });
  const connect = async (headers: Record<string, string>, config: Omit<ConnectConfig, 'sock'>) => {
    const client = await connectSsh(agent.url, headers, {
      hostVerifier: (key: Buffer) => `ssh-ed25519 ${key.toString('base64')}` === hostKey,
      ...config,
    });
    clients.push(client);
    return client;
  };

  beforeAll(async () => {
    root = await mkdtemp(path.join(os.tmpdir(), 'gitspaces-agent-ssh-'));
    home = path.join(root, 'home');
    workspace = path.join(root, 'workspace');
    await mkdir(workspace, { recursive: true });
    agent = await serveAgent({
      gitspaceId: 'gs-ssh',
      secret: AGENT_SECRET,
      workspaceDir: workspace,
      homeDir: home,
      ide: 'terminal',
      logger: silentLogger,
      ideHost: { shell: '/bin/sh', env: { PATH: '/usr/bin:/bin', HOME: home } },
    });
    const answer = await fetch(`${agent.url}/_agent/route`, {
      method: 'PUT',
      headers: { authorization: `Bearer ${AGENT_SECRET}`, 'content-type': 'application/json' },
      body: JSON.stringify({ secret: 'k'.repeat(43) }),
    });
    expect(answer.status).toBe(200);
    hostKey = ((await answer.json()) as { sshHostKey: string }).sshHostKey;
    route = await agent.route(); // A second start's route: the same host key, a new route secret.
  });
  afterEach(() => {
    for (const client of clients.splice(0)) client.end();
  });
  afterAll(async () => {
    await agent.close();
    await rm(root, { recursive: true, force: true });
  });

  it('publishes an ed25519 host key kept in the home (0600, directory 0700), the same on every route', async () => {
    expect(hostKey).toMatch(/^ssh-ed25519 AAAA[A-Za-z0-9+/]+=*$/);
    const file = hostKeyFile(home, 'gs-ssh');
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    expect((await stat(path.dirname(file))).mode & 0o777).toBe(0o700);
    const again = await fetch(`${agent.url}/_agent/route`, {
      method: 'PUT',
      headers: { authorization: `Bearer ${AGENT_SECRET}`, 'content-type': 'application/json' },
      body: JSON.stringify({ secret: route[ROUTE_SECRET_HEADER] }),
    });
    expect(await again.json()).toEqual({ sshHostKey: hostKey });
  });

  it('a listed key runs commands in the workspace, with their exit status', async () => {
    const client = await connect(asAlice(`${mallory.fingerprint},${alice.fingerprint}`), {
      privateKey: alice.privateKey,
    });
    expect(await run(client, 'pwd')).toEqual({ stdout: `${workspace}\n`, stderr: '', code: 0, signal: undefined });
    expect(await run(client, 'echo oops >&2; exit 3')).toMatchObject({ stderr: 'oops\n', code: 3 });
    expect((await run(client, 'tty', { pty: true })).stdout).toMatch(/^\/dev\/pts\/\d+/);
  });

  it('a terminal gets the bytes typed, even a character split across two packets', async () => {
    const client = await connect(asAlice(), { privateKey: alice.privateKey });
    const typed = await new Promise<string>((resolve, reject) => {
      client.exec('stty -echo; echo ready; head -c 2 | od -An -tx1', { pty: true }, (error, channel) => {
        if (error) return reject(error);
        collect(channel).then((result) => resolve(result.stdout), reject);
        channel.once('data', () => {
          channel.write(Buffer.from([0xc3])); // The first byte of é, then the second on its own.
          setTimeout(() => channel.write(Buffer.from([0xa9, 0x0a])), 100);
        });
      });
    });
    expect(typed).toMatch(/ready\r?\n c3 a9\r?\n/);
  });

  it('a signal from the client reaches the command, and its end is reported as that signal', async () => {
    const client = await connect(asAlice(), { privateKey: alice.privateKey });
    const ended = await new Promise<{ code?: number; signal?: string }>((resolve, reject) => {
      client.exec('echo started; exec sleep 30', (error, channel) => {
        if (error) return reject(error);
        channel.once('data', () => channel.signal('TERM'));
        collect(channel).then(resolve, reject);
      });
    });
    expect(ended).toMatchObject({ code: undefined, signal: 'SIGTERM' }); // ssh2's client names it with its SIG.
  });

  it('sessions get the IDE’s environment and the client’s TERM/LANG/LC_*, never the agent’s secrets', async () => {
    process.env.GITSPACE_AGENT_SECRET_FILE = '/run/credentials/agent-secret'; // As in an agent started by systemd.
    try {
      const client = await connect(asAlice(), { privateKey: alice.privateKey });
      const env = { LANG: 'C.UTF-8', LC_TIME: 'C', GITSPACE_AGENT_SECRET_FD: '3', LD_PRELOAD: '/tmp/evil.so' };
      const { stdout } = await run(client, 'env', { env });
      expect(stdout).toContain('PATH=/usr/bin:/bin\n');
      expect(stdout).toContain('LANG=C.UTF-8\n');
      expect(stdout).toContain('LC_TIME=C\n');
      expect(stdout).not.toContain('GITSPACE_AGENT_SECRET');
      expect(stdout).not.toContain('LD_PRELOAD');
      const shell = await new Promise<string>((resolve, reject) => {
        client.shell({ term: 'xterm' }, (error, channel) => {
          if (error) return reject(error);
          collect(channel).then((result) => resolve(result.stdout), reject);
          channel.end('env; exit\n');
        });
      });
      expect(shell).toContain('TERM=xterm');
      expect(shell).not.toContain('GITSPACE_AGENT_SECRET');
    } finally {
      delete process.env.GITSPACE_AGENT_SECRET_FILE;
    }
  });

  it('a key the gateway did not list is refused, even when it signs correctly', async () => {
    await expect(connect(asAlice(), { privateKey: mallory.privateKey })).rejects.toThrow(
      /All configured authentication methods failed/,
    );
  });

  it('a listed public key with a signature made by another key is refused', async () => {
    const forged = utils.parseKey(alice.privateKey) as ParsedKey;
    const signer = utils.parseKey(mallory.privateKey) as ParsedKey;
    forged.sign = (data: Buffer, algo?: string) => signer.sign(data, algo);
    // Given as an auth method: ssh2 takes a parsed key there (its privateKey option wants a string).
    const method = { type: 'publickey', username: 'gitspace', key: forged as unknown as string } as const;
    await expect(connect(asAlice(), { authHandler: [method] })).rejects.toThrow(
      /All configured authentication methods failed/,
    );
  });

  it('drops a client after six refused attempts: a listed key offered seventh never gets in', async () => {
    const offers = [...Array.from({ length: 6 }, () => userKey().privateKey), alice.privateKey];
    let offered = 0;
    await expect(
      connect(asAlice(), {
        authHandler: (_methods, _partial, next) => {
          const key = offers[offered++];
          next(key ? { type: 'publickey', username: 'gitspace', key } : { type: 'none', username: 'gitspace' });
        },
      }),
    ).rejects.toThrow();
    expect(offered).toBeGreaterThanOrEqual(6);
  });

  it('the door: no key list → 403, no route secret → 401, any spelling of the path is SSH', async () => {
    const ws = agent.url.replace('http', 'ws');
    expect(await upgradeStatus(`${ws}${SSH_PATH}`, route)).toBe(403);
    expect(await upgradeStatus(`${ws}${SSH_PATH}`, { [SSH_KEYS_HEADER]: alice.fingerprint })).toBe(401);
    expect(await upgradeStatus(`${ws}${SSH_PATH}`, { ...asAlice(), [ROUTE_SECRET_HEADER]: 'x'.repeat(43) })).toBe(401);
    for (const spelling of ['/_GITSPACES/SSH', '/%5Fgitspaces/ssh', '//_gitspaces/ssh/', '/%255Fgitspaces/Ssh']) {
      expect([spelling, await upgradeStatus(`${ws}${spelling}`, route)]).toEqual([spelling, 403]);
      expect([spelling, await upgradeStatus(`${ws}${spelling}`, asAlice())]).toEqual([spelling, 101]);
    }
    // Other reserved paths are nobody's, and a plain request to the SSH path is not an IDE page.
    expect(await upgradeStatus(`${ws}/_gitspaces/ssh/renew`, asAlice())).toBe(404);
    expect(await upgradeStatus(`${ws}/_gitspaces/other`, asAlice())).toBe(404);
    expect((await fetch(`${agent.url}/_GITSPACES/ssh`, { headers: asAlice() })).status).toBe(404);
  });

  describe('port forwarding', () => {
    let echo: net.Server;
    let echoPort: number;
    beforeAll(async () => {
      echo = net.createServer((socket) => socket.pipe(socket));
      await new Promise<void>((resolve) => echo.listen(0, '127.0.0.1', resolve));
      echoPort = (echo.address() as net.AddressInfo).port;
    });
    afterAll(() => new Promise<void>((resolve) => echo.close(() => resolve())));
    afterEach(() => jest.restoreAllMocks());

    const forward = (client: Client, host: string, port: number) =>
      new Promise<ClientChannel>((resolve, reject) =>
        client.forwardOut('127.0.0.1', 12345, host, port, (error, channel) =>
          error ? reject(error) : resolve(channel),
        ),
      );

    it('-L reaches a loopback port on the machine', async () => {
      const client = await connect(asAlice(), { privateKey: alice.privateKey });
      for (const host of ['127.0.0.1', 'localhost']) {
        const channel = await forward(client, host, echoPort);
        const echoed = new Promise<string>((resolve) =>
          channel.once('data', (data: Buffer) => resolve(data.toString())),
        );
        channel.write('ping');
        expect(await echoed).toBe('ping');
        channel.end();
      }
    });

    it('-L anywhere else (the metadata service, the private network) is refused without dialing', async () => {
      const client = await connect(asAlice(), { privateKey: alice.privateKey });
      const dial = jest.spyOn(net, 'connect');
      for (const host of ['169.254.169.254', '10.0.0.1', '::ffff:169.254.169.254', 'metadata.google.internal']) {
        await expect(forward(client, host, 80)).rejects.toThrow(/Channel open failure/);
      }
      expect(dial).not.toHaveBeenCalled();
      // The control: a loopback destination is dialed, through the same spy.
      (await forward(client, '127.0.0.1', echoPort)).end();
      expect(dial).toHaveBeenCalledTimes(1);
    });

    it('remote forwarding (tcpip-forward) is refused', async () => {
      const client = await connect(asAlice(), { privateKey: alice.privateKey });
      await expect(
        new Promise<number>((resolve, reject) =>
          client.forwardIn('127.0.0.1', 0, (error, port) => (error ? reject(error) : resolve(port))),
        ),
      ).rejects.toThrow(/Unable to bind|failure/i);
    });
  });

  it('without an sftp-server, sftp is refused with a message that names `scp -O`', async () => {
    const bare = await serveAgent({
      gitspaceId: 'gs-ssh-bare',
      secret: AGENT_SECRET,
      workspaceDir: workspace,
      homeDir: home,
      ide: 'terminal',
      logger: silentLogger,
      ideHost: { shell: '/bin/sh', env: { PATH: '/usr/bin:/bin' } },
      sftpServer: path.join(root, 'no-such-sftp-server'),
    });
    try {
      const bareRoute = await bare.route();
      const client = await connectSsh(
        bare.url,
        { ...bareRoute, [SSH_KEYS_HEADER]: alice.fingerprint },
        {
          privateKey: alice.privateKey,
        },
      );
      clients.push(client);
      const result = await new Promise<{ stderr: string; code?: number }>((resolve, reject) =>
        client.subsys('sftp', (error, channel) => (error ? reject(error) : collect(channel).then(resolve, reject))),
      );
      expect(result.code).toBe(1);
      expect(result.stderr).toContain('`scp -O`');
    } finally {
      await bare.close();
    }
  });

  const sftpInstalled = SFTP_SERVER_PATHS.some((candidate) => existsSync(candidate));

  it('sftp puts and gets files relative to the workspace', async () => {
    expect(sftpInstalled).toBe(true); // CI installs openssh-sftp-server (.ci/run).
    const client = await connect(asAlice(), { privateKey: alice.privateKey });
    const sftp = await sftpOf(client);
    const local = path.join(root, 'upload.txt');
    await writeFile(local, 'hello over sftp\n');
    await new Promise<void>((resolve, reject) =>
      sftp.fastPut(local, 'uploaded.txt', (e) => (e ? reject(e) : resolve())),
    );
    expect(await readFile(path.join(workspace, 'uploaded.txt'), 'utf8')).toBe('hello over sftp\n');
    const back = path.join(root, 'download.txt');
    await new Promise<void>((resolve, reject) =>
      sftp.fastGet('uploaded.txt', back, (e) => (e ? reject(e) : resolve())),
    );
    expect(await readFile(back, 'utf8')).toBe('hello over sftp\n');
  });
});
