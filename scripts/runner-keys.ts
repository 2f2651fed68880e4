import { RunnerKeyRing } from '../common/sealed-secret';

/**
 * `npm run runner-keys`: a new runner key for an infrastructure, as the two lines an operator needs: the private ring
 * for its runners (GITSPACES_RUNNER_KEYS) and the public key to register on the infrastructure (runnerPublicKeys,
 * or GITSPACES_LOCAL_RUNNER_PUBLIC_KEYS for the embedded `local` one).
 * `npm run runner-keys -- --public` prints the public keys of the ring in GITSPACES_RUNNER_KEYS instead (rotation).
 */
function main(): void {
  const publicOnly = process.argv.includes('--public');
  if (publicOnly) {
    const ring = process.env.GITSPACES_RUNNER_KEYS;
    if (!ring) throw new Error('set GITSPACES_RUNNER_KEYS to the ring whose public keys to print');
    process.stdout.write(`${RunnerKeyRing.parse(ring).publicKeys().map(String).join(',')}\n`);
    return;
  }
  const privateKey = RunnerKeyRing.generateKey();
  const [publicKey] = RunnerKeyRing.parse(privateKey).publicKeys();
  process.stdout.write(`GITSPACES_RUNNER_KEYS=${privateKey}\nGITSPACES_RUNNER_PUBLIC_KEYS=${String(publicKey)}\n`);
}

try {
  main();
} catch (error) {
  process.stderr.write(`${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(2);
}
