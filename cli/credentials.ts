/**
 * The API URL and token `gitspaces login` keeps in `<config dir>/gitspaces/credentials.json`: the directory 0700, the
 * file 0600, written whole (a temporary file renamed over it), and refused when anyone but its owner could read it.
 */
import { chmod, mkdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { DEFAULT_API_URL, normalizeApiUrl } from './args';
import { CredentialsError } from './errors';

export interface Credentials {
  /** The API's base URL, without `/api/v1`. */
  url: string;
  token: string;
}

/** `$XDG_CONFIG_HOME/gitspaces`, or `~/.config/gitspaces` (the XDG Base Directory default). */
export function configDirectory(env: { XDG_CONFIG_HOME?: string | undefined; HOME?: string | undefined }): string {
  // The spec ignores a relative XDG_CONFIG_HOME.
  const base =
    env.XDG_CONFIG_HOME && path.isAbsolute(env.XDG_CONFIG_HOME)
      ? env.XDG_CONFIG_HOME
      : path.join(env.HOME ?? '', '.config');
  return path.join(base, 'gitspaces');
}

export interface CredentialsFile {
  readonly path: string;
  /** The stored credentials; undefined when there is no file. */
  load(): Promise<Credentials | undefined>;
  save(credentials: Credentials): Promise<void>;
  /** Removes the file; false when there was none. */
  remove(): Promise<boolean>;
}

export function credentialsFile(configDir: string): CredentialsFile {
  const file = path.join(configDir, 'credentials.json');
  return {
    path: file,
    async load() {
      const info = await stat(file).catch((error: NodeJS.ErrnoException) => {
        if (error.code === 'ENOENT') return undefined;
        throw new CredentialsError(`cannot read ${file}: ${error.message}`);
      });
      if (!info) return undefined;
      if (!info.isFile()) throw new CredentialsError(`${file} is not a file; remove it and log in again`);
      // Like ssh with a private key: a token others can read may already be theirs.
      const mode = info.mode & 0o777;
      if ((mode & 0o077) !== 0) {
        throw new CredentialsError(
          `${file} can be read by others (mode ${mode.toString(8).padStart(4, '0')}), so its token is not used: ` +
            `make it private with 'chmod 600 ${file}' if no one else could have read it, or log in again with a new token`,
        );
      }
      if (process.getuid && info.uid !== process.getuid()) {
        throw new CredentialsError(`${file} belongs to another user (uid ${info.uid}); log in again`);
      }
      const parsed = parseCredentials(await readFile(file, 'utf8'));
      if (!parsed) throw new CredentialsError(`${file} is not a Gitspaces credentials file; log in again`);
      return parsed;
    },
    async save(credentials) {
      await mkdir(configDir, { recursive: true, mode: 0o700 });
      // mkdir leaves an existing directory's mode as it was.
      await chmod(configDir, 0o700);
      const temporary = `${file}.${process.pid}.tmp`;
      await writeFile(temporary, `${JSON.stringify(credentials, null, 2)}\n`, { mode: 0o600, flag: 'w' });
      await chmod(temporary, 0o600);
      await rename(temporary, file);
    },
    async remove() {
      const existed = await stat(file).then(
        () => true,
        () => false,
      );
      await rm(file, { force: true });
      return existed;
    },
  };
}

function parseCredentials(text: string): Credentials | undefined {
  try {
    const value = JSON.parse(text) as unknown;
    if (typeof value !== 'object' || value === null) return undefined;
    const { url, token } = value as Record<string, unknown>;
    if (typeof url !== 'string' || typeof token !== 'string' || token === '') return undefined;
    return { url: normalizeApiUrl(url), token };
  } catch {
    return undefined;
  }
}

/** GITSPACES_URL and GITSPACES_TOKEN: each overrides its part of the stored credentials. */
export interface CredentialsOverride {
  url?: string | undefined;
  token?: string | undefined;
}

/**
 * The URL and token to call the API with. The stored token is never sent to another URL: GITSPACES_URL naming a
 * different API needs GITSPACES_TOKEN too.
 */
export function chooseCredentials(stored: Credentials | undefined, override: CredentialsOverride): Credentials {
  const url = override.url !== undefined ? normalizeApiUrl(override.url) : undefined;
  if (override.token !== undefined) return { url: url ?? stored?.url ?? DEFAULT_API_URL, token: override.token };
  if (!stored) {
    throw new CredentialsError(
      'not logged in: run `gitspaces login --url <api url>`, or set GITSPACES_URL and GITSPACES_TOKEN',
    );
  }
  if (url !== undefined && url !== stored.url) {
    throw new CredentialsError(
      `no token for ${url} (you are logged in to ${stored.url}): run \`gitspaces login --url ${url}\`, or set GITSPACES_TOKEN too`,
    );
  }
  return stored;
}
