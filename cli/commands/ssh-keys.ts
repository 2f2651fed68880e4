/** `ssh-keys add`, `list` and `remove`: the SSH public keys that may open `gitspaces ssh` to your gitspaces. */
import { readFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { CliContext } from '../context';
import { ApiError, UsageError } from '../errors';
import { formatTable, formatTime } from '../format';
import type { Page, SshKey } from '../types';

/** The caller's keys (`me`: the API's name for whoever calls). */
const MY_KEYS = '/users/me/ssh-keys';

/** The public keys `ssh-keys add` takes when given no file, first found first: ssh-keygen's default names. */
export const DEFAULT_PUBLIC_KEYS = ['id_ed25519.pub', 'id_ecdsa.pub', 'id_rsa.pub'];

export async function addSshKeyCommand(
  context: CliContext,
  file: string | undefined,
  options: { name?: string; json?: boolean },
): Promise<void> {
  const { publicKey, source } = await readPublicKey(file, os.userInfo().homedir);
  const client = await context.connect();
  const key = await client.post<SshKey>(MY_KEYS, {
    publicKey,
    ...(options.name !== undefined ? { name: options.name } : {}),
  });
  if (options.json) return context.printJson(key);
  context.print(`added SSH key '${key.name}' (${key.type} ${key.fingerprint}) from ${source}`);
}

/**
 * The public key in `file`, or in the first of DEFAULT_PUBLIC_KEYS in `home`/.ssh (the passwd entry's home, where
 * OpenSSH looks, whatever $HOME says). A private key is refused before anything is sent.
 */
export async function readPublicKey(
  file: string | undefined,
  home: string,
): Promise<{ publicKey: string; source: string }> {
  const candidates = file !== undefined ? [file] : DEFAULT_PUBLIC_KEYS.map((name) => path.join(home, '.ssh', name));
  for (const candidate of candidates) {
    let text: string;
    try {
      text = await readFile(candidate, 'utf8');
    } catch (error) {
      if (file === undefined && (error as NodeJS.ErrnoException).code === 'ENOENT') continue;
      throw new UsageError(`cannot read ${candidate}: ${(error as Error).message}`);
    }
    if (text.includes('PRIVATE KEY-----')) {
      throw new UsageError(`${candidate} is a private key, which never leaves your machine: give its .pub file`);
    }
    const publicKey = text
      .split('\n')
      .map((line) => line.trim())
      .find((line) => line !== '' && !line.startsWith('#'));
    if (!publicKey) throw new UsageError(`${candidate} holds no public key`);
    return { publicKey, source: candidate };
  }
  throw new UsageError(
    `no public key in ${path.join(home, '.ssh')} (${DEFAULT_PUBLIC_KEYS.join(', ')}): make one with \`ssh-keygen -t ed25519\`, or name the .pub file`,
  );
}

export async function listSshKeysCommand(context: CliContext, options: { json?: boolean }): Promise<void> {
  const { items } = await (await context.connect()).get<Page<SshKey>>(MY_KEYS);
  if (options.json) return context.printJson({ items });
  if (items.length === 0) return context.print('no SSH keys; add yours with `gitspaces ssh-keys add`');
  context.print(
    formatTable(
      ['NAME', 'TYPE', 'FINGERPRINT', 'ADDED', 'ID'],
      items.map((key) => [key.name, key.type, key.fingerprint, formatTime(key.createdAt), key.id]),
    ),
  );
}

/** Removes a key named by its id or its fingerprint (`SHA256:…`, as `ssh-keygen -lf` prints it). */
export async function removeSshKeyCommand(
  context: CliContext,
  idOrFingerprint: string,
  options: { json?: boolean },
): Promise<void> {
  const client = await context.connect();
  const { items } = await client.get<Page<SshKey>>(MY_KEYS);
  const key = items.find((k) => k.id === idOrFingerprint || k.fingerprint === idOrFingerprint);
  if (!key) {
    throw new ApiError(
      404,
      'not_found',
      `you have no SSH key with the id or fingerprint '${idOrFingerprint}'; \`gitspaces ssh-keys list\` shows yours`,
    );
  }
  await client.delete(`${MY_KEYS}/${encodeURIComponent(key.id)}`);
  if (options.json) return context.printJson({ removed: key });
  context.print(`removed SSH key '${key.name}' (${key.fingerprint}); it opens no new SSH connection from now on`);
}
