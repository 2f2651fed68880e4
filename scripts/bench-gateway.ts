/**
 * `npm run bench:gateway`: the same upstream measured four ways in one run — direct, through this gateway (the real
 * `gateway/main.ts` process), through a plain `node:http` proxy (the baseline of Node's own server and client, no
 * auth, no checks) and through nginx (Debian package, loopback, generated config, one worker like the gateway's one
 * process) — with wrk at 50 connections; then WebSocket echo round trips direct vs gateway.
 *
 * Budget: gateway ≥ 60% of nginx's requests/s and ≤ 2 ms added p99 (compared with nginx) at 50 connections.
 * Each path is measured BENCH_ROUNDS times, interleaved, and the budget is judged on the medians.
 * Env: BENCH_DURATION_S (default 10), BENCH_CONNECTIONS (default 50), BENCH_ROUNDS (default 5), BENCH_PROFILE_DIR
 * (write a CPU profile of the gateway there). Not part of `npm test`.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { WebSocket } from 'ws';
import { createAccessTokenIssuer } from '../api/access-tokens';
import { GATEWAY_COOKIE } from '../gateway/gateway';
import { cpuSeconds } from './bench-figures';

const ROOT = path.resolve(__dirname, '..');
/** USER_HZ: /proc reports CPU time in these ticks (100 on Linux). */
const DURATION_S = Number(process.env.BENCH_DURATION_S ?? 10);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 50);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
const GITSPACE_ID = 'gs-bench';
const RUN_ID = 'bench-run';
const ADMIN_TOKEN = 'bench-admin-token';

/** The upstream: a small Node server like the agent (HTTP "hello" and a WebSocket echo), in its own process. */
const UPSTREAM_SOURCE = `
const http = require('node:http');
const { WebSocketServer } = require('ws');
const body = Buffer.from('hello from the gitspace\\n');
const server = http.createServer((req, res) => {
  res.writeHead(200, { 'content-type': 'text/plain', 'content-length': body.length });
  res.end(body);
});
const wss = new WebSocketServer({ server });
wss.on('connection', (ws) => ws.on('message', (data, binary) => ws.send(data, { binary })));
server.keepAliveTimeout = 65000;
server.listen(Number(process.argv[1]), '127.0.0.1', () => process.stdout.write('ready\\n'));
`;

/**
 * The baseline: the plainest proxy on Node's own HTTP server and client (http.createServer + http.request with a
 * keep-alive Agent), hop-by-hop headers dropped, nothing else. What the gateway adds beyond it is its own work.
 */
const NODE_PROXY_SOURCE = `
const http = require('node:http');
const [port, upstreamPort] = process.argv.slice(1).map(Number);
const agent = new http.Agent({ keepAlive: true, maxSockets: 256, maxFreeSockets: 256 });
const HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'upgrade']);
function endToEnd(headers) {
  const out = {};
  for (const name in headers) if (!HOP.has(name)) out[name] = headers[name];
  return out;
}
const server = http.createServer((req, res) => {
  const headers = endToEnd(req.headers);
  headers['x-forwarded-for'] = req.socket.remoteAddress;
  const upstream = http.request(
    { host: '127.0.0.1', port: upstreamPort, method: req.method, path: req.url, headers, agent },
    (response) => {
      res.writeHead(response.statusCode, endToEnd(response.headers));
      response.pipe(res);
    },
  );
  upstream.on('error', () => {
    if (!res.headersSent) res.writeHead(502);
    res.end();
  });
  req.pipe(upstream);
});
server.keepAliveTimeout = 65000;
server.listen(port, '127.0.0.1', () => process.stdout.write('ready\\n'));
`;

const children: ChildProcess[] = [];

async function main(): Promise<void> {
  for (const tool of ['wrk', 'nginx']) {
    if (spawnSync('sh', ['-c', `command -v ${tool} || test -x /usr/sbin/${tool}`]).status !== 0) {
      throw new Error(`${tool} is not installed: apt-get install -y wrk nginx`);
    }
  }
  const work = await mkdtemp(path.join(os.tmpdir(), 'gitspaces-bench-'));
  try {
    const [upstreamPort, gatewayPort, adminPort, nginxPort, jwksPort, nodeProxyPort] = (await freePorts(6)) as [
      number,
      number,
      number,
      number,
      number,
      number,
    ];
    const upstream = `http://127.0.0.1:${upstreamPort}`;
    const upstreamChild = await startChild(
      'upstream',
      process.execPath,
      ['-e', UPSTREAM_SOURCE, String(upstreamPort)],
      {},
      `${upstream}/`,
    );

    // The control plane's part: an issuer and its JWKS endpoint, which the gateway fetches once.
    const issuer = await createAccessTokenIssuer({ dataDir: work, ttlSeconds: 3600 });
    const jwks = http.createServer((_req, res) =>
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(issuer.jwks())),
    );
    await new Promise<void>((resolve) => jwks.listen(jwksPort, '127.0.0.1', resolve));
    const { token } = await issuer.issue({ userId: 'bench', gitspaceId: GITSPACE_ID, runId: RUN_ID });

    const gateway = `http://127.0.0.1:${gatewayPort}`;
    const gatewayChild = await startChild(
      'gateway',
      process.execPath,
      [...profileArgs(), '--import', 'tsx', path.join(ROOT, 'gateway/main.ts')],
      {
        GITSPACES_GATEWAY_PORT: String(gatewayPort),
        GITSPACES_GATEWAY_ADMIN_PORT: String(adminPort),
        GITSPACES_GATEWAY_ADMIN_TOKEN: ADMIN_TOKEN,
        GITSPACES_JWKS_URL: `http://127.0.0.1:${jwksPort}/jwks.json`,
        GITSPACES_DATA_DIR: work,
      },
      `${gateway}/healthz`,
    );
    const put = await fetch(`http://127.0.0.1:${adminPort}/routes/${GITSPACE_ID}`, {
      method: 'PUT',
      headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' },
      body: JSON.stringify({ target: upstream, secret: randomBytes(32).toString('base64url'), runId: RUN_ID }),
    });
    if (!put.ok) throw new Error(`gateway route registration failed: ${put.status} ${await put.text()}`);

    const nginx = `http://127.0.0.1:${nginxPort}`;
    await writeFile(path.join(work, 'nginx.conf'), nginxConfig(work, nginxPort, upstreamPort));
    const nginxChild = await startChild(
      'nginx',
      '/usr/sbin/nginx',
      ['-p', work, '-c', path.join(work, 'nginx.conf'), '-e', path.join(work, 'nginx-error.log')],
      {},
      `${nginx}/`,
    );

    const nodeProxy = `http://127.0.0.1:${nodeProxyPort}`;
    const nodeProxyChild = await startChild(
      'node:http proxy',
      process.execPath,
      ['-e', NODE_PROXY_SOURCE, String(nodeProxyPort), String(upstreamPort)],
      {},
      `${nodeProxy}/`,
    );

    const cookie = `${GATEWAY_COOKIE}=${token}`;
    const gatewayUrl = `${gateway}/gitspaces/${GITSPACE_ID}/`;
    const check = await fetch(gatewayUrl, { headers: { cookie } });
    if (check.status !== 200) throw new Error(`gateway answered ${check.status}: ${await check.text()}`);

    process.stdout.write(
      `Setup: everything on loopback on this machine's ${os.cpus().length} CPUs, shared by wrk, the upstream and the proxy.\n` +
        `  wrk: 1 thread, ${CONNECTIONS} connections, ${DURATION_S}s per measurement after a 2s warm-up; ` +
        `${ROUNDS} rounds of direct → gateway → node:http → nginx, interleaved so background load hits all alike.\n` +
        '  upstream: one Node process (24-byte body). gateway: one Node process, the real gateway/main.ts ' +
        '(session cookie checked on every request, info logging, nothing logged per request).\n' +
        '  node:http: the plainest proxy on Node (http.createServer + http.request, keep-alive Agent), no checks: ' +
        'a baseline.\n' +
        '  nginx: worker_processes 1, no master, access_log off, upstream keepalive 128, HTTP/1.1 upstream — ' +
        'one worker against one Node process.\n' +
        '  cpu µs/req: user+system CPU of the proxy process (upstream for direct) per request, from /proc.\n\n',
    );
    const rounds: Record<PathName, LoadResult[]> = { direct: [], gateway: [], 'node:http': [], nginx: [] };
    const rows: string[][] = [];
    for (let round = 1; round <= ROUNDS; round++) {
      const runs: [PathName, LoadResult][] = [
        ['direct', await load(`${upstream}/`, [], upstreamChild.pid)],
        ['gateway', await load(gatewayUrl, ['-H', `Cookie: ${cookie}`], gatewayChild.pid)],
        ['node:http', await load(`${nodeProxy}/`, [], nodeProxyChild.pid)],
        ['nginx', await load(`${nginx}/`, [], nginxChild.pid)],
      ];
      for (const [name, result] of runs) {
        rounds[name].push(result);
        rows.push([String(round), ...formatResult(name, result)]);
      }
    }
    printTable(['round', 'path', 'requests/s', 'p50 ms', 'p99 ms', 'cpu µs/req'], rows);
    const medians = {
      direct: median(rounds.direct),
      gateway: median(rounds.gateway),
      'node:http': median(rounds['node:http']),
      nginx: median(rounds.nginx),
    };
    process.stdout.write(`\nMedian of ${ROUNDS} rounds:\n`);
    printTable(
      ['path', 'requests/s', 'p50 ms', 'p99 ms', 'cpu µs/req'],
      PATHS.map((name) => formatResult(name, medians[name])),
    );

    const share = medians.gateway.rps / medians.nginx.rps;
    const addedP99VsNginx = medians.gateway.p99 - medians.nginx.p99;
    const addedP99VsDirect = medians.gateway.p99 - medians.direct.p99;
    process.stdout.write(
      `\ngateway / nginx requests/s: ${(share * 100).toFixed(0)}% (budget ≥ 60%) ${share >= 0.6 ? 'PASS' : 'FAIL'}\n` +
        `gateway p99 added vs nginx: ${addedP99VsNginx.toFixed(3)} ms (budget ≤ 2 ms) ${addedP99VsNginx <= 2 ? 'PASS' : 'FAIL'}; ` +
        `vs direct: ${addedP99VsDirect.toFixed(3)} ms\n` +
        `gateway / plain node:http proxy requests/s: ${((medians.gateway.rps / medians['node:http'].rps) * 100).toFixed(0)}%\n\n`,
    );

    const wsDirect = await echoRoundTrips(`${upstream.replace('http', 'ws')}/`, {});
    const wsGateway = await echoRoundTrips(`${gatewayUrl.replace('http', 'ws')}echo`, { cookie });
    printTable(
      ['WebSocket echo', 'round trips', 'p50 ms', 'p99 ms'],
      [
        ['direct', String(wsDirect.count), wsDirect.p50.toFixed(3), wsDirect.p99.toFixed(3)],
        ['gateway', String(wsGateway.count), wsGateway.p50.toFixed(3), wsGateway.p99.toFixed(3)],
      ],
    );
    jwks.close();
  } finally {
    stopChildren();
    await rm(work, { recursive: true, force: true });
  }
}

/** `BENCH_PROFILE_DIR=dir` writes a CPU profile of the gateway process there (open it in Chrome DevTools). */
function profileArgs(): string[] {
  const dir = process.env.BENCH_PROFILE_DIR;
  return dir ? ['--cpu-prof', `--cpu-prof-dir=${path.resolve(dir)}`] : [];
}

function nginxConfig(work: string, port: number, upstreamPort: number): string {
  return `daemon off;
master_process off;
worker_processes 1;
pid ${work}/nginx.pid;
error_log ${work}/nginx-error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path ${work}/client_body;
  proxy_temp_path ${work}/proxy;
  fastcgi_temp_path ${work}/fastcgi;
  uwsgi_temp_path ${work}/uwsgi;
  scgi_temp_path ${work}/scgi;
  upstream gitspace { server 127.0.0.1:${upstreamPort}; keepalive 128; }
  server {
    listen 127.0.0.1:${port};
    location / {
      proxy_pass http://gitspace;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $host;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
    }
  }
}
`;
}

const PATHS = ['direct', 'gateway', 'node:http', 'nginx'] as const;
type PathName = (typeof PATHS)[number];

interface LoadResult {
  rps: number;
  p50: number;
  p99: number;
  /** CPU time of the measured process per request, in microseconds (NaN where /proc is not there). */
  cpuUsPerRequest: number;
}

async function load(url: string, extra: string[], pid: number | undefined): Promise<LoadResult> {
  await run('wrk', ['-t1', `-c${CONNECTIONS}`, '-d2s', ...extra, url]);
  const cpuBefore = cpuSeconds(pid) ?? NaN;
  const output = await run('wrk', ['-t1', `-c${CONNECTIONS}`, `-d${DURATION_S}s`, '--latency', ...extra, url]);
  const cpu = (cpuSeconds(pid) ?? NaN) - cpuBefore;
  const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(output)?.[1]);
  const requests = Number(/(\d+) requests in/.exec(output)?.[1]);
  const non2xx = /Non-2xx or 3xx responses:\s+(\d+)/.exec(output)?.[1];
  if (non2xx) throw new Error(`wrk saw ${non2xx} error answers from ${url}`);
  const socketErrors = /Socket errors:.*/.exec(output)?.[0];
  if (socketErrors) throw new Error(`wrk saw ${socketErrors} on ${url}`);
  return { rps, p50: latency(output, '50%'), p99: latency(output, '99%'), cpuUsPerRequest: (cpu / requests) * 1e6 };
}

/** The median run by requests/s (its latencies come with it, so a row is one real measurement). */
function median(results: LoadResult[]): LoadResult {
  const sorted = [...results].sort((a, b) => a.rps - b.rps);
  return sorted[Math.floor((sorted.length - 1) / 2)]!;
}

function formatResult(name: string, r: LoadResult): string[] {
  return [name, r.rps.toFixed(0), r.p50.toFixed(3), r.p99.toFixed(3), r.cpuUsPerRequest.toFixed(1)];
}

/** Reads a percentile line of wrk's latency distribution (`50%  1.23ms`) in milliseconds. */
function latency(output: string, percentile: string): number {
  const match = new RegExp(`^\\s*${percentile}\\s+([\\d.]+)(us|ms|s)\\s*$`, 'm').exec(output);
  if (!match) throw new Error(`no ${percentile} latency in wrk output:\n${output}`);
  const value = Number(match[1]);
  return match[2] === 'us' ? value / 1000 : match[2] === 's' ? value * 1000 : value;
}

async function echoRoundTrips(
  url: string,
  headers: Record<string, string>,
  count = 2000,
): Promise<{ count: number; p50: number; p99: number }> {
  const ws = new WebSocket(url, { headers });
  await new Promise((resolve, reject) => {
    ws.once('open', resolve);
    ws.once('error', reject);
  });
  const times: number[] = [];
  const payload = Buffer.alloc(64, 'x');
  for (let i = 0; i < count + 200; i++) {
    const started = process.hrtime.bigint();
    await new Promise<void>((resolve) => {
      ws.once('message', () => resolve());
      ws.send(payload);
    });
    if (i >= 200) times.push(Number(process.hrtime.bigint() - started) / 1e6); // the first 200 warm up
  }
  ws.close();
  times.sort((a, b) => a - b);
  return { count, p50: times[Math.floor(count * 0.5)]!, p99: times[Math.floor(count * 0.99)]! };
}

function printTable(header: string[], rows: string[][]): void {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) =>
    cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  process.stdout.write(
    `${line(header)}\n${widths.map((w) => '-'.repeat(w)).join('  ')}\n${rows.map(line).join('\n')}\n`,
  );
}

function run(file: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (out += chunk.toString()));
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve(out) : reject(new Error(`${file} failed (${code}): ${out}`))));
  });
}

/** Starts a long-running child and waits until `readyUrl` answers; it is stopped by its pid at the end. */
async function startChild(
  name: string,
  file: string,
  args: string[],
  env: Record<string, string>,
  readyUrl: string,
): Promise<ChildProcess> {
  const child = spawn(file, args, { cwd: ROOT, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  let output = '';
  child.stdout?.on('data', (chunk: Buffer) => (output = (output + chunk.toString()).slice(-2000)));
  child.stderr?.on('data', (chunk: Buffer) => (output = (output + chunk.toString()).slice(-2000)));
  const deadline = Date.now() + 20_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`${name} exited early: ${output}`);
    try {
      await fetch(readyUrl);
      return child;
    } catch {
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
  throw new Error(`${name} did not come up: ${output}`);
}

function stopChildren(): void {
  for (const child of children.splice(0)) {
    if (child.pid && child.exitCode === null) child.kill('SIGTERM');
  }
}

async function freePorts(count: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from(
      { length: count },
      () =>
        new Promise<http.Server>((resolve) => {
          const server = http.createServer();
          server.listen(0, '127.0.0.1', () => resolve(server));
        }),
    ),
  );
  const ports = servers.map((s) => (s.address() as AddressInfo).port);
  await Promise.all(servers.map((s) => new Promise((resolve) => s.close(resolve))));
  return ports;
}

process.on('SIGINT', () => {
  stopChildren();
  process.exit(130);
});

main().catch((error: unknown) => {
  stopChildren();
  process.stderr.write(`bench:gateway failed: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
});
