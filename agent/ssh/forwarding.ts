import net from 'node:net';
import type { AcceptConnection, RejectConnection, ServerChannel, TcpipRequestInfo } from 'ssh2';
import { classifyAddress } from '../repository-address';

/**
 * `ssh -L` and `-D` (direct-tcpip): reach a port on the gitspace machine itself, as a shell there could. Only loopback
 * destinations (127.0.0.0/8, ::1, `localhost`); anything else is refused before a packet is sent, so a tunnel into
 * the gitspace never becomes a way into the network it sits in (its metadata service, its neighbours).
 */
export function isLoopbackDestination(host: string): boolean {
  return host.toLowerCase() === 'localhost' || classifyAddress(host) === 'loopback';
}

/** Handles one direct-tcpip channel request: connects, then accepts the channel and joins the two. */
export function forwardToLoopback(
  accept: AcceptConnection<ServerChannel>,
  reject: RejectConnection,
  info: TcpipRequestInfo,
): void {
  const validPort = Number.isInteger(info.destPort) && info.destPort > 0 && info.destPort < 65536;
  if (!validPort || !isLoopbackDestination(info.destIP)) return reject();
  const socket = net.connect({ host: info.destIP, port: info.destPort });
  socket.once('error', () => reject());
  socket.once('connect', () => {
    // `localhost` is resolved by the system: whatever it names must still be this machine.
    if (classifyAddress(socket.remoteAddress ?? '') !== 'loopback') {
      socket.destroy();
      return reject();
    }
    const channel = accept();
    socket.removeAllListeners('error');
    socket.on('error', () => channel.destroy());
    channel.on('error', () => socket.destroy());
    socket.pipe(channel).pipe(socket);
  });
}
