import http from 'node:http';
import type { AddressInfo } from 'node:net';

/** A request as the proxy saw it. */
export interface ProxiedRequest {
  method: string;
  url: string;
  body: string;
}

/** An answer the proxy gives instead of forwarding. */
export interface Fault {
  status: number;
  body: string;
  contentType?: string;
}

/** A loopback HTTP proxy in front of an emulator that can answer the next requests with faults (throttling, 503). */
export interface FaultProxy {
  url: string;
  /** Answers the next `count` requests that `match` accepts (all by default) with `fault` instead of forwarding. */
  failNext(count: number, fault: Fault, match?: (request: ProxiedRequest) => boolean): void;
  /** Every request seen, faulted or forwarded, oldest first. */
  readonly requests: ProxiedRequest[];
  /** Faults armed but not yet served. */
  pendingFaults(): number;
  close(): Promise<void>;
}

/** Starts the proxy on 127.0.0.1 with a free port, forwarding to `target` (a loopback URL). */
export async function startFaultProxy(target: string): Promise<FaultProxy> {
  const targetUrl = new URL(target);
  if (!['127.0.0.1', 'localhost', '[::1]'].includes(targetUrl.hostname)) {
    throw new Error(`the fault proxy only forwards to loopback, not ${targetUrl.hostname}`);
  }
  const armed: { remaining: number; fault: Fault; match: (request: ProxiedRequest) => boolean }[] = [];
  const requests: ProxiedRequest[] = [];

  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const raw = Buffer.concat(chunks);
      const seen = { method: req.method ?? 'GET', url: req.url ?? '/', body: raw.toString() };
      requests.push(seen);
      const rule = armed.find((candidate) => candidate.remaining > 0 && candidate.match(seen));
      if (rule) {
        rule.remaining -= 1;
        res.writeHead(rule.fault.status, { 'content-type': rule.fault.contentType ?? 'text/xml' });
        res.end(rule.fault.body);
        return;
      }
      const upstream = http.request(
        {
          host: targetUrl.hostname.replace(/^\[|\]$/g, ''),
          port: targetUrl.port,
          method: req.method,
          path: req.url,
          headers: { ...req.headers, host: targetUrl.host },
        },
        (answer) => {
          res.writeHead(answer.statusCode ?? 502, answer.headers);
          answer.pipe(res);
        },
      );
      upstream.on('error', (error) => {
        res.writeHead(502, { 'content-type': 'text/plain' });
        res.end(`fault proxy: ${error.message}`);
      });
      upstream.end(raw);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;

  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    failNext: (count, fault, match = () => true) => armed.push({ remaining: count, fault, match }),
    pendingFaults: () => armed.reduce((sum, rule) => sum + rule.remaining, 0),
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
