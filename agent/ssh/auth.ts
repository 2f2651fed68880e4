import { utils, type AuthContext } from 'ssh2';
import { sshFingerprint } from '../../common/ssh-public-key';

/** Refused authentication requests after which the connection is dropped (OpenSSH's MaxAuthTries default). */
export const MAX_AUTH_ATTEMPTS = 6;

/**
 * Decides the authentication requests of one SSH connection: public keys only, and only a key whose fingerprint the
 * gateway listed (the verified access token's keys) and whose signature verifies. `disconnect` is called once the
 * client has had MAX_AUTH_ATTEMPTS refusals; like OpenSSH, the `none` request clients open with is not counted.
 */
export function publicKeyAuthenticator(
  allowedFingerprints: ReadonlySet<string>,
  disconnect: () => void,
): (context: AuthContext) => void {
  let requests = 0;
  let refusals = 0;
  return (context) => {
    const first = requests++ === 0;
    if (context.method === 'publickey' && allowedFingerprints.has(sshFingerprint(context.key.data))) {
      // Without a signature the client only asks whether this key would do; accept() then answers "yes, sign".
      if (!context.signature) return context.accept();
      const key = utils.parseKey(context.key.data);
      const signed = context.blob !== undefined && !(key instanceof Error);
      if (signed && key.verify(context.blob!, context.signature, context.hashAlgo) === true) {
        return context.accept();
      }
    }
    context.reject(['publickey']);
    if (first && context.method === 'none') return;
    if (++refusals >= MAX_AUTH_ATTEMPTS) disconnect();
  };
}
