import { readFile } from 'node:fs/promises';
import path from 'node:path';
import {
  GetSecretValueCommand,
  ResourceNotFoundException,
  SecretsManagerClient,
} from '@aws-sdk/client-secrets-manager';
import { SecretManagerServiceClient } from '@google-cloud/secret-manager';
import { gcpClientOptions } from '../providers/gcp/provider';
import { TOKEN_REF_PATTERN } from '../contracts/lifecycle';

/**
 * Where a runner finds repository tokens named by reference (`repository.tokenRef`), so a token never passes through
 * the control plane: the runner's operator keeps it in the customer's own secret store. The store is chosen by the
 * runner's configuration (GITSPACES_SECRET_STORE), never by the caller, and holds only repository tokens, under a
 * fixed prefix: a reference cannot name the runner's own credentials.
 *
 * A reference is a name in the gitspace owner's scope (`github`) or the shared scope (`shared/github`). The owner comes
 * from the signed work order, so one user cannot name another user's token.
 */
export interface SecretStore {
  /** Throws SecretNotFoundError, saying where it looked, when the store holds no such secret. */
  resolve(ref: string, ownerId: string): Promise<string>;
}

export class SecretNotFoundError extends Error {
  override name = 'SecretNotFoundError';
}

/** GITSPACES_SECRET_STORE: `file:<dir>`, `env`, `gcp:<project>` or `aws:<region>`. */
export type SecretStoreConfig =
  | { kind: 'file'; dir: string }
  | { kind: 'env' }
  | { kind: 'gcp'; project: string; apiEndpoint?: string }
  | { kind: 'aws'; region: string };

export function parseSecretStoreConfig(text: string): SecretStoreConfig {
  const [kind, ...rest] = text.split(':');
  const value = rest.join(':');
  if (kind === 'env' && value === '') return { kind: 'env' };
  if (kind === 'file' && value !== '') return { kind: 'file', dir: path.resolve(value) };
  if (kind === 'gcp' && /^[a-z][a-z0-9-]{4,28}[a-z0-9]$/.test(value)) return { kind: 'gcp', project: value };
  if (kind === 'aws' && /^[a-z]{2}(-[a-z]+)+-\d$/.test(value)) return { kind: 'aws', region: value };
  throw new Error(`GITSPACES_SECRET_STORE must be file:<dir>, env, gcp:<project id> or aws:<region>, not '${text}'`);
}

/** A reference split into its scope and name; throws on anything else (also checked by the API). */
function parseRef(ref: string, ownerId: string): { scope: 'shared' | 'user'; name: string } {
  if (!TOKEN_REF_PATTERN.test(ref)) throw new SecretNotFoundError(`'${ref}' is not a secret reference`);
  // Owner ids are generated (`usr-` and 12 letters or digits); anything else would let a name escape its scope.
  if (!/^usr-[a-z0-9]{12}$/.test(ownerId)) throw new SecretNotFoundError(`'${ownerId}' is not a user id`);
  return ref.startsWith('shared/')
    ? { scope: 'shared', name: ref.slice('shared/'.length) }
    : { scope: 'user', name: ref };
}

export function createSecretStore(config: SecretStoreConfig): SecretStore {
  switch (config.kind) {
    case 'file':
      return fileStore(config.dir);
    case 'env':
      return envStore(process.env);
    case 'gcp':
      return gcpStore(config.project, config.apiEndpoint);
    case 'aws':
      return awsStore(config.region);
  }
}

/** `<dir>/shared/<name>` and `<dir>/users/<owner id>/<name>`: one file per token, for a mounted secret volume. */
function fileStore(dir: string): SecretStore {
  const fileOf = (ref: string, ownerId: string) => {
    const { scope, name } = parseRef(ref, ownerId);
    return scope === 'shared' ? path.join(dir, 'shared', name) : path.join(dir, 'users', ownerId, name);
  };
  return {
    async resolve(ref, ownerId) {
      const file = fileOf(ref, ownerId);
      try {
        return nonEmpty((await readFile(file, 'utf8')).trim(), `file ${file}`);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === 'ENOENT') throw new SecretNotFoundError(`no file ${file}`);
        throw error;
      }
    },
  };
}

/** `GITSPACES_REPOSITORY_TOKEN_SHARED_<NAME>` and `GITSPACES_REPOSITORY_TOKEN_USER_<OWNER ID>_<NAME>`. */
function envStore(env: NodeJS.ProcessEnv): SecretStore {
  const variableOf = (ref: string, ownerId: string) => {
    const { scope, name } = parseRef(ref, ownerId);
    const upper = (s: string) => s.toUpperCase().replace(/-/g, '_');
    return scope === 'shared'
      ? `GITSPACES_REPOSITORY_TOKEN_SHARED_${upper(name)}`
      : `GITSPACES_REPOSITORY_TOKEN_USER_${upper(ownerId)}_${upper(name)}`;
  };
  return {
    resolve(ref, ownerId) {
      try {
        const variable = variableOf(ref, ownerId);
        return Promise.resolve(nonEmpty(env[variable]?.trim() ?? '', `environment variable ${variable}`));
      } catch (error) {
        return Promise.reject(error as Error);
      }
    },
  };
}

/**
 * GCP Secret Manager, latest version of `gitspaces-shared-<name>` or `gitspaces-user-<owner id>-<name>` in the
 * configured project: the runner's service account needs secretAccessor on those secrets only.
 */
function gcpStore(project: string, apiEndpoint: string | undefined): SecretStore {
  let client: SecretManagerServiceClient | undefined;
  // The same transport and emulator handling as the Compute clients (providers/gcp).
  const clientOf = () => (client ??= new SecretManagerServiceClient(gcpClientOptions(apiEndpoint)));
  const nameOf = (ref: string, ownerId: string) => {
    const { scope, name } = parseRef(ref, ownerId);
    const secret = scope === 'shared' ? `gitspaces-shared-${name}` : `gitspaces-user-${ownerId}-${name}`;
    return `projects/${project}/secrets/${secret}/versions/latest`;
  };
  return {
    async resolve(ref, ownerId) {
      const name = nameOf(ref, ownerId);
      try {
        const [version] = await clientOf().accessSecretVersion({ name });
        const data = version.payload?.data;
        const text =
          typeof data === 'string'
            ? Buffer.from(data, 'base64').toString('utf8')
            : Buffer.from(data ?? []).toString('utf8');
        return nonEmpty(text.trim(), `GCP secret ${name}`);
      } catch (error) {
        // NOT_FOUND: gRPC status 5, or HTTP 404 on the REST transport the runner uses.
        const code = (error as { code?: unknown }).code;
        if (code === 5 || code === 404) throw new SecretNotFoundError(`no GCP secret ${name}`);
        throw error;
      }
    },
  };
}

/**
 * AWS Secrets Manager, `gitspaces/shared/<name>` or `gitspaces/users/<owner id>/<name>`: the runner's role needs
 * secretsmanager:GetSecretValue on `secret:gitspaces/*` only. An emulator endpoint comes from the SDK's standard
 * AWS_ENDPOINT_URL_SECRETS_MANAGER.
 */
function awsStore(region: string): SecretStore {
  let client: SecretsManagerClient | undefined;
  const nameOf = (ref: string, ownerId: string) => {
    const { scope, name } = parseRef(ref, ownerId);
    return scope === 'shared' ? `gitspaces/shared/${name}` : `gitspaces/users/${ownerId}/${name}`;
  };
  return {
    async resolve(ref, ownerId) {
      const name = nameOf(ref, ownerId);
      client ??= new SecretsManagerClient({ region, maxAttempts: 4 });
      try {
        const result = await client.send(new GetSecretValueCommand({ SecretId: name }));
        const text =
          result.SecretString ?? (result.SecretBinary ? Buffer.from(result.SecretBinary).toString('utf8') : '');
        return nonEmpty(text.trim(), `AWS secret ${name}`);
      } catch (error) {
        if (error instanceof ResourceNotFoundException) throw new SecretNotFoundError(`no AWS secret ${name}`);
        throw error;
      }
    },
  };
}

function nonEmpty(value: string, where: string): string {
  if (value === '') throw new SecretNotFoundError(`${where} is empty`);
  return value;
}
