import { spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import path from 'node:path';

/** The devcontainer.json lifecycle commands the agent runs in the workspace (the spec's names). */
export interface LifecycleCommands {
  postCreateCommand?: string | string[];
  postStartCommand?: string | string[];
}

/** Thrown when a devcontainer lifecycle command exits non-zero; carries the command's last output. */
export class LifecycleCommandError extends Error {
  constructor(
    readonly hook: keyof LifecycleCommands,
    readonly exitCode: number,
    readonly output: string,
  ) {
    super(`devcontainer ${hook} failed with exit code ${exitCode}: ${output.trim().split('\n').slice(-5).join(' | ')}`);
    this.name = 'LifecycleCommandError';
  }
}

/** Reads `.devcontainer/devcontainer.json` (or `.devcontainer.json`); JSON with comments is accepted. */
export async function readLifecycleCommands(workspaceDir: string): Promise<LifecycleCommands> {
  for (const candidate of ['.devcontainer/devcontainer.json', '.devcontainer.json']) {
    let text: string;
    try {
      text = await readFile(path.join(workspaceDir, candidate), 'utf8');
    } catch {
      continue;
    }
    const parsed = JSON.parse(stripJsonComments(text)) as Record<string, unknown>;
    return {
      postCreateCommand: commandOf(parsed.postCreateCommand),
      postStartCommand: commandOf(parsed.postStartCommand),
    };
  }
  return {};
}

export async function runLifecycleCommand(
  hook: keyof LifecycleCommands,
  command: string | string[],
  workspaceDir: string,
  timeoutMs: number,
  /** The environment the repository's command gets: the IDE's, never the agent's own (it holds the agent secret). */
  env: Record<string, string>,
): Promise<void> {
  const [file, args] = Array.isArray(command) ? [command[0] ?? 'true', command.slice(1)] : ['/bin/sh', ['-c', command]];
  await new Promise<void>((resolve, reject) => {
    const child = spawn(file, args, { cwd: workspaceDir, env, stdio: ['ignore', 'pipe', 'pipe'], timeout: timeoutMs });
    let output = '';
    const collect = (chunk: Buffer) => {
      output = (output + chunk.toString('utf8')).slice(-4096);
    };
    child.stdout.on('data', collect);
    child.stderr.on('data', collect);
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve() : reject(new LifecycleCommandError(hook, code ?? -1, output))));
  });
}

function commandOf(value: unknown): string | string[] | undefined {
  if (typeof value === 'string' && value.trim()) return value;
  if (Array.isArray(value) && value.length > 0 && value.every((v) => typeof v === 'string')) return value as string[];
  return undefined;
}

function stripJsonComments(text: string): string {
  // Drops // and /* */ comments outside strings, and trailing commas, as devcontainer.json allows both.
  let out = '';
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i]!;
    if (inString) {
      out += ch;
      if (ch === '\\') out += text[++i] ?? '';
      else if (ch === '"') inString = false;
    } else if (ch === '"') {
      inString = true;
      out += ch;
    } else if (ch === '/' && text[i + 1] === '/') {
      while (i < text.length && text[i] !== '\n') i++;
      out += '\n';
    } else if (ch === '/' && text[i + 1] === '*') {
      i = text.indexOf('*/', i + 2);
      if (i === -1) break;
      i++;
    } else {
      out += ch;
    }
  }
  return out.replace(/,(\s*[}\]])/g, '$1');
}
