import { ed25519PublicKey } from '../test/support/ssh-keys';
import { AgentRequestError, createAgentClient } from './agent-client';

/**
 * The machine is its user's: what its agent answers to `PUT /_agent/route` ends up in known_hosts files, so the runner
 * takes one plain ed25519 key line and nothing else (a hostile agent could otherwise add host keys or CA lines).
 */
describe('the agent client takes only a plain SSH host key from the agent', () => {
  const answering = (status: number, body?: unknown) =>
    createAgentClient(async () =>
      status === 204 ? new Response(null, { status }) : new Response(JSON.stringify(body), { status }),
    );
  const give = (client: ReturnType<typeof createAgentClient>) =>
    client.setRouteSecret('http://agent', 'agent-secret', 'r'.repeat(43), new AbortController().signal);

  it('a key line as the agent makes it; none from an agent older than SSH (204)', async () => {
    const key = ed25519PublicKey();
    await expect(give(answering(200, { sshHostKey: key }))).resolves.toEqual({ sshHostKey: key });
    await expect(give(answering(204))).resolves.toEqual({});
  });

  it.each([
    ['no key', {}],
    ['not a string', { sshHostKey: 7 }],
    ['a comment', { sshHostKey: ed25519PublicKey('evil@host') }],
    ['a second line', { sshHostKey: `${ed25519PublicKey()}\n@cert-authority * ${ed25519PublicKey()}` }],
    ['a trailing newline', { sshHostKey: `${ed25519PublicKey()}\n` }],
    ['known_hosts markers', { sshHostKey: `@cert-authority ${ed25519PublicKey()}` }],
    ['another key type', { sshHostKey: ed25519PublicKey().replace('ssh-ed25519', 'ssh-rsa') }],
    ['a longer blob', { sshHostKey: `${ed25519PublicKey()}AAAA` }],
  ])('refuses an answer with %s', async (_name, body) => {
    await expect(give(answering(200, body))).rejects.toBeInstanceOf(AgentRequestError);
  });

  it('a refused route secret is an error with the status', async () => {
    await expect(give(answering(401, { error: {} }))).rejects.toMatchObject({ status: 401 });
  });
});
