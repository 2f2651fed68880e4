/**
 * The browser side of the terminal IDE. Every URL is relative, so the page works wherever it is served: at `/` on the
 * agent, at `/gitspaces/<id>/` behind the gateway, or at `terminal/` beside VS Code.
 */
import { escapeHtml } from '../../common/html';

/** The HTML page; the gitspace id and workspace are shown in the title only. */
export function terminalPage(gitspaceId: string, workspaceDir: string): string {
  const title = escapeHtml(`${gitspaceId} — ${workspaceDir}`);
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${title}</title>
<link rel="stylesheet" href="assets/xterm.css">
<style>
  html, body { height: 100%; margin: 0; background: #1e1e1e; color: #ccc; font-family: system-ui, sans-serif; }
  body { display: flex; flex-direction: column; }
  #status { padding: 4px 10px; font-size: 12px; background: #252526; }
  #terminal { flex: 1; min-height: 0; padding: 4px; }
</style>
</head>
<body>
<div id="status" role="status">connecting…</div>
<div id="terminal"></div>
<script src="assets/xterm.js"></script>
<script src="assets/addon-fit.js"></script>
<script src="terminal.js"></script>
</body>
</html>
`;
}

/** The page's script: one WebSocket per page, JSON messages up (input, resize), raw terminal output down. */
export const TERMINAL_CLIENT_SCRIPT = `'use strict';
(function () {
  var status = document.getElementById('status');
  var term = new Terminal({ cursorBlink: true, fontSize: 14, scrollback: 5000 });
  var fit = new FitAddon.FitAddon();
  term.loadAddon(fit);
  term.open(document.getElementById('terminal'));
  fit.fit();
  var url = new URL('pty', location.href);
  url.protocol = location.protocol === 'https:' ? 'wss:' : 'ws:';
  url.search = '';
  url.hash = '';
  var socket = new WebSocket(url.href);
  var send = function (message) {
    if (socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify(message));
  };
  var resize = function () {
    fit.fit();
    send({ type: 'resize', cols: term.cols, rows: term.rows });
  };
  socket.onopen = function () {
    status.textContent = 'connected';
    resize();
    term.focus();
  };
  socket.onmessage = function (event) { term.write(event.data); };
  socket.onclose = function (event) {
    status.textContent = 'disconnected' + (event.reason ? ' (' + event.reason + ')' : '') + ' — reload the page for a new shell';
  };
  term.onData(function (data) { send({ type: 'input', data: data }); });
  window.addEventListener('resize', resize);
})();
`;
