import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { CreateSecretCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { createSecretStore, parseSecretStoreConfig, SecretNotFoundError, type SecretStore } from './secret-store';
import { startMoto, useEc2Emulator } from '../test/support/moto';
import { startFakeSecretManager } from '../test/support/fake-secret-manager';

const alice = 'usr-aaaaaaaaaaaa';
const bob = 'usr-bbbbbbbbbbbb';

/**
 * The same contract for every store: a name resolves in the owner's scope or, after `shared/`, in the shared one;
 * nobody reaches another user's token or anything outside the store's prefix.
 */
interface StoreUnderTest {
  store: SecretStore;
  put(key: string, value: string): Promise<void>;
  stop?(): Promise<void> | void;
}

function contract(name: string, setUp: () => Promise<StoreUnderTest>) {
  describe(name, () => {
    let store: SecretStore;
    let made: StoreUnderTest | undefined;
    afterAll(() => made?.stop?.());
    beforeAll(async () => {
      made = await setUp();
      store = made.store;
      // Keys as the store's own layout names them: alice's `github`, bob's `github`, the shared `deploy`.
      await made.put(`user:${alice}:github`, 'alice-token');
      await made.put(`user:${bob}:github`, 'bob-token');
      await made.put('shared:deploy', 'shared-token');
    }, 60_000);

    it("resolves a name in the owner's own scope", async () => {
      expect(await store.resolve('github', alice)).toBe('alice-token');
      expect(await store.resolve('github', bob)).toBe('bob-token');
    });

    it('resolves a shared name for anyone', async () => {
      expect(await store.resolve('shared/deploy', alice)).toBe('shared-token');
    });

    it("never gives one user another user's token, whatever the name", async () => {
      for (const ref of ['deploy', `../users/${bob}/github`, `${bob}/github`, `shared/../users/${bob}/github`]) {
        await expect(store.resolve(ref, alice)).rejects.toBeInstanceOf(SecretNotFoundError);
      }
    });

    it('refuses an owner id that is not a generated one', async () => {
      await expect(store.resolve('github', `${alice}/../${bob}`)).rejects.toBeInstanceOf(SecretNotFoundError);
    });
  });
}

contract('the file store', async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'gitspaces-tokens-'));
  return {
    stop: () => rm(dir, { recursive: true, force: true }),
    store: createSecretStore(parseSecretStoreConfig(`file:${dir}`)),
    async put(key, value) {
      const [scope, owner, name] = key.split(':') as [string, string, string?];
      const file = scope === 'shared' ? path.join(dir, 'shared', owner) : path.join(dir, 'users', owner, name!);
      await mkdir(path.dirname(file), { recursive: true });
      await writeFile(file, `${value}\n`, { mode: 0o600 });
    },
  };
});

contract('the environment store', async () => {
  const saved = { ...process.env };
  return {
    stop: () => {
      process.env = saved;
    },
    store: createSecretStore({ kind: 'env' }),
    put(key, value) {
      const [scope, owner, name] = key.split(':') as [string, string, string?];
      const upper = (s: string) => s.toUpperCase().replace(/-/g, '_');
      process.env[
        scope === 'shared'
          ? `GITSPACES_REPOSITORY_TOKEN_SHARED_${upper(owner)}`
          : `GITSPACES_REPOSITORY_TOKEN_USER_${upper(owner)}_${upper(name!)}`
      ] = value;
      return Promise.resolve();
    },
  };
});

describe('the environment store and the runner environment', () => {
  it("cannot name the runner's own settings", async () => {
    const store = createSecretStore({ kind: 'env' });
    process.env.GITSPACES_GATEWAY_ADMIN_TOKEN_TEST = 'runner-secret';
    try {
      for (const ref of ['GATEWAY_ADMIN_TOKEN_TEST', 'shared/GATEWAY_ADMIN_TOKEN_TEST']) {
        await expect(store.resolve(ref, alice)).rejects.toBeInstanceOf(SecretNotFoundError);
      }
    } finally {
      delete process.env.GITSPACES_GATEWAY_ADMIN_TOKEN_TEST;
    }
  });
});

contract('AWS Secrets Manager (moto)', async () => {
  const moto = await startMoto();
  // Dummy credentials and no metadata service; the SDK's standard endpoint variable points at moto.
  const restore = useEc2Emulator(moto.url);
  process.env.AWS_ENDPOINT_URL_SECRETS_MANAGER = moto.url;
  const client = new SecretsManagerClient({ region: 'eu-west-1' });
  return {
    stop: async () => {
      restore();
      await moto.stop();
    },
    store: createSecretStore(parseSecretStoreConfig('aws:eu-west-1')),
    async put(key, value) {
      const [scope, owner, name] = key.split(':') as [string, string, string?];
      const secretName = scope === 'shared' ? `gitspaces/shared/${owner}` : `gitspaces/users/${owner}/${name!}`;
      await client.send(new CreateSecretCommand({ Name: secretName, SecretString: value }));
    },
  };
});

contract('GCP Secret Manager (its REST edge on loopback)', async () => {
  const secretManager = await startFakeSecretManager();
  const project = 'acme-dev-1';
  return {
    stop: () => secretManager.stop(),
    store: createSecretStore({ kind: 'gcp', project, apiEndpoint: secretManager.url }),
    put(key, value) {
      const [scope, owner, name] = key.split(':') as [string, string, string?];
      const id = scope === 'shared' ? `gitspaces-shared-${owner}` : `gitspaces-user-${owner}-${name!}`;
      secretManager.secrets.set(`projects/${project}/secrets/${id}`, value);
      return Promise.resolve();
    },
  };
});

describe('GITSPACES_SECRET_STORE', () => {
  it.each(['', 'vault:x', 'file:', 'gcp:Bad_Project', 'aws:moon', 'env:extra'])('refuses %p', (text) => {
    expect(() => parseSecretStoreConfig(text)).toThrow(/GITSPACES_SECRET_STORE must be/);
  });
});
