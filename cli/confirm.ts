/** Asking the person at the terminal a yes/no question before a change. */
import { createInterface } from 'node:readline/promises';
import type { CliContext } from './context';
import { UsageError } from './errors';

/**
 * Whether the person answered yes to `question` (on stderr; Ctrl-C is a no). Without a terminal there is no one to
 * ask: a usage error, `withoutTerminal` (which says what flag a script adds).
 */
export async function confirm(context: CliContext, question: string, withoutTerminal: string): Promise<boolean> {
  if (!context.io.stdinIsTerminal) throw new UsageError(withoutTerminal);
  const prompt = createInterface({ input: context.io.stdin, output: context.io.stderr as NodeJS.WritableStream });
  const answered = prompt.question(`${question} [y/N] `);
  const interrupted = new Promise<string>((resolve) => prompt.once('SIGINT', () => resolve('')));
  const answer = await Promise.race([answered, interrupted]).finally(() => prompt.close());
  return /^y(es)?$/i.test(answer.trim());
}
