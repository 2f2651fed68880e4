// A stand-in for code-server in tests. Either `node fake-vscode-server.js <port> <workspace>` or code-server's own
// arguments (`--bind-addr 127.0.0.1:<port> … <workspace>`, the last argument being the workspace). It serves a page
// naming the workspace, echoes WebSocket frames (raw text, no framing library needed for the assertions) and answers
// `GET /healthz` as code-server does: `expired` until a request other than the health check, then `alive`.
// `--fake-healthz=<status>` makes the health route say that status instead (a server that is not healthy).
const http = require('node:http');
const crypto = require('node:crypto');
const args = process.argv.slice(2);
const option = (name) => args.find((a) => a.startsWith(`${name}=`))?.slice(name.length + 1);
const bindAddr = args.indexOf('--bind-addr');
const port = bindAddr >= 0 ? args[bindAddr + 1].split(':').pop() : args[0];
const workspace = bindAddr >= 0 ? args[args.length - 1] : args[1];
const forcedHealth = option('--fake-healthz');
let used = false;
const server = http.createServer((req, res) => {
  if (/^\/healthz\/?$/.test(req.url)) {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ status: forcedHealth ?? (used ? 'alive' : 'expired'), lastHeartbeat: 0 }));
    return;
  }
  used = true;
  res.writeHead(200, { 'content-type': 'text/html' });
  res.end(`<title>fake vscode</title><p>workspace=${workspace} path=${req.url}</p>`);
});
server.on('upgrade', (req, socket) => {
  const accept = crypto
    .createHash('sha1')
    .update(req.headers['sec-websocket-key'] + '258EAFA5-E914-47DA-95CA-C5AB0DC85B11')
    .digest('base64');
  socket.write(
    `HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n\r\n`,
  );
  socket.on('data', (frame) => {
    // Unmask one small client text frame and send it back unmasked.
    const length = frame[1] & 0x7f;
    const mask = frame.subarray(2, 6);
    const payload = Buffer.from(frame.subarray(6, 6 + length).map((byte, i) => byte ^ mask[i % 4]));
    socket.write(Buffer.concat([Buffer.from([0x81, payload.length]), payload]));
  });
});
server.listen(Number(port), '127.0.0.1');
process.on('SIGTERM', () => process.exit(0));
