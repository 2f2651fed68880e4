// The containers' health check (docker-compose.yml), in the image as /app/healthcheck.mjs:
//   node healthcheck.mjs http://127.0.0.1:3000/readyz   healthy on a 2xx answer
//   node healthcheck.mjs tcp://temporal:7233             healthy when a TCP connection opens
// Anything else, or no answer within 4 s, is unhealthy (exit 1), with the reason on stderr.
import net from 'node:net';

const TIMEOUT_MS = 4000;

function fail(reason) {
  process.stderr.write(`unhealthy: ${reason}\n`);
  process.exit(1);
}

const target = URL.canParse(process.argv[2] ?? '') ? new URL(process.argv[2]) : undefined;
if (!target) fail(`usage: node healthcheck.mjs <http(s)://…|tcp://host:port>, got '${process.argv[2] ?? ''}'`);
setTimeout(() => fail(`no answer from ${target.href} within ${TIMEOUT_MS} ms`), TIMEOUT_MS).unref();

if (target.protocol === 'tcp:') {
  const socket = net.connect({ host: target.hostname, port: Number(target.port) });
  socket.once('connect', () => {
    socket.destroy();
    process.exit(0);
  });
  socket.once('error', (error) => fail(`${target.href}: ${error.message}`));
} else if (target.protocol === 'http:' || target.protocol === 'https:') {
  fetch(target, { signal: AbortSignal.timeout(TIMEOUT_MS) }).then(
    (response) => (response.ok ? process.exit(0) : fail(`${target.href} answered ${response.status}`)),
    (error) => fail(`${target.href}: ${error instanceof Error ? error.message : String(error)}`),
  );
} else {
  fail(`unsupported scheme ${target.protocol}`);
}
