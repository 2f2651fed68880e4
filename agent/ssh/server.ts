import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { Server, type Connection } from 'ssh2';
import { WebSocketServer, createWebSocketStream } from 'ws';
import { publicKeyAuthenticator } from './auth';
import { forwardToLoopback } from './forwarding';
import type { HostKey } from './host-key';
import { serveSession, type SessionOptions } from './session';

/**
 * The gitspace's SSH server. Nothing listens for SSH on the machine: each tunnel is a WebSocket the agent admitted on
 * `/_gitspaces/ssh` (the gateway's route secret and the verified token's key list), carrying the raw SSH byte stream in
 * binary frames, and gets its own ssh2 Server fed through injectSocket.
 */

export interface SshServerOptions extends SessionOptions {
  hostKey: HostKey;
}

export interface SshServer {
  /** Takes an admitted upgrade; `fingerprints` are the `SHA256:` fingerprints of the keys that may log in. */
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer, fingerprints: string[]): void;
  /** Ends every SSH connection. */
  close(): void;
}

/** Largest WebSocket message taken from the gateway; SSH packets are at most 256 KiB. */
const MAX_FRAME_BYTES = 1024 * 1024;
/** How long a client has to authenticate (OpenSSH's LoginGraceTime is 120 s). */
const LOGIN_GRACE_MS = 60_000;

export function createSshServer(options: SshServerOptions): SshServer {
  const logger = options.logger;
  const wss = new WebSocketServer({ noServer: true, maxPayload: MAX_FRAME_BYTES });
  const connections = new Set<Connection>();

  function serveTunnel(stream: Duplex, allowedFingerprints: ReadonlySet<string>): void {
    const server = new Server({ hostKeys: [options.hostKey.privateKey] });
    server.on('connection', (client) => {
      connections.add(client);
      const grace = setTimeout(() => client.end(), LOGIN_GRACE_MS);
      client.on(
        'authentication',
        publicKeyAuthenticator(allowedFingerprints, () => client.end()),
      );
      client.on('ready', () => {
        clearTimeout(grace);
        logger.info('ssh client authenticated');
      });
      client.on('session', (accept) => serveSession(accept(), options));
      client.on('tcpip', forwardToLoopback); // direct-streamlocal (sockets) has no handler: ssh2 refuses it.
      // Remote forwarding (tcpip-forward) and streamlocal: the gitspace never listens on the client's behalf.
      client.on('request', (_accept, reject) => reject?.());
      client.on('error', (error) => logger.debug('ssh connection error', { error: error.message }));
      client.on('close', () => {
        clearTimeout(grace);
        connections.delete(client);
      });
    });
    // ssh2 reads nothing of the socket but its stream side (remoteAddress and such are only reported).
    server.injectSocket(stream as Socket);
  }

  return {
    handleUpgrade(req, socket, head, fingerprints) {
      wss.handleUpgrade(req, socket, head, (ws) => {
        const stream = createWebSocketStream(ws);
        stream.on('error', () => stream.destroy());
        serveTunnel(stream, new Set(fingerprints));
      });
    },
    close() {
      for (const client of connections) client.end();
      wss.close();
    },
  };
}
