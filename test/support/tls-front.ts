import { execFile, spawn } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { promisify } from 'node:util';
import { freeLoopbackPort } from '../../common/net';

/**
 * A TLS-terminating proxy with client-certificate verification in front of a plaintext server (the Temporal dev
 * server has no TLS of its own): nginx's `stream` module, `ssl_verify_client on`, ALPN h2 for gRPC, the bytes passed
 * through untouched. Debian: `apt-get install nginx-light libnginx-mod-stream`.
 */
export interface TlsFront {
  /** host:port of the TLS listener. */
  address: string;
  /** nginx's error log so far (refused handshakes are logged here). */
  errorLog(): Promise<string>;
  stop(): Promise<void>;
}

export async function startTlsFront(options: {
  dir: string;
  upstream: string;
  certFile: string;
  keyFile: string;
  /** The CA that client certificates must chain to. */
  clientCaFile: string;
}): Promise<TlsFront> {
  const nginx = '/usr/sbin/nginx';
  const built = await promisify(execFile)(nginx, ['-V']).catch(() => {
    throw new Error('nginx is not installed: apt-get install nginx-light libnginx-mod-stream');
  });
  const flags = `${built.stdout}${built.stderr}`;
  const modulesPath = /--modules-path=(\S+)/.exec(flags)?.[1] ?? '/usr/lib/nginx/modules';
  if (!/--with-stream\b/.test(flags)) throw new Error('this nginx has no stream module');
  const port = await freeLoopbackPort();
  const errorLog = path.join(options.dir, 'nginx-error.log');
  const config = path.join(options.dir, 'nginx.conf');
  await writeFile(
    config,
    [
      ...(/--with-stream=dynamic/.test(flags) ? [`load_module ${modulesPath}/ngx_stream_module.so;`] : []),
      'daemon off;',
      'master_process off;',
      'worker_processes 1;',
      `pid ${path.join(options.dir, 'nginx.pid')};`,
      `error_log ${errorLog} info;`,
      'events { worker_connections 128; }',
      'stream {',
      '  server {',
      `    listen 127.0.0.1:${port} ssl;`,
      `    ssl_certificate ${options.certFile};`,
      `    ssl_certificate_key ${options.keyFile};`,
      `    ssl_client_certificate ${options.clientCaFile};`,
      '    ssl_verify_client on;',
      '    ssl_protocols TLSv1.2 TLSv1.3;',
      '    ssl_alpn h2;',
      `    proxy_pass ${options.upstream};`,
      '  }',
      '}',
      '',
    ].join('\n'),
  );
  const child = spawn(nginx, ['-p', options.dir, '-c', config, '-e', errorLog], { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    await exited;
  };
  const deadline = Date.now() + 10_000;
  while (!(await canConnect(port))) {
    if (child.exitCode !== null || Date.now() > deadline) {
      await stop();
      throw new Error(`nginx did not start: ${output}${await readFile(errorLog, 'utf8').catch(() => '')}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return { address: `127.0.0.1:${port}`, errorLog: () => readFile(errorLog, 'utf8'), stop };
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}
