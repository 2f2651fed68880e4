/**
 * Progress of a long operation on stderr: on a terminal one line rewritten in place with the current step and the
 * time elapsed; otherwise (a pipe, a CI log) a plain line each time the step changes.
 */
import { formatElapsed } from './format';

export interface Progress {
  /** What is going on now (`start 'api': prepare the workspace`). */
  update(text: string): void;
  /** A line of its own above the progress (a dropped stream being resumed). */
  note(line: string): void;
  /** Stops the clock and clears the line. */
  end(): void;
}

const SPINNER = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];
const CLEAR_LINE = '\r\x1b[2K';

export function createProgress(output: { write(text: string): unknown }, terminal: boolean, now = Date.now): Progress {
  const started = now();
  const elapsed = () => formatElapsed(now() - started);
  let text = '';
  if (!terminal) {
    return {
      update(next) {
        if (next === text) return;
        text = next;
        output.write(`[${elapsed().padStart(5)}] ${text}\n`);
      },
      note: (line) => output.write(`${line}\n`),
      end() {},
    };
  }
  let frame = 0;
  const render = () => output.write(`${CLEAR_LINE}${SPINNER[frame++ % SPINNER.length]} ${text} · ${elapsed()}`);
  // The clock ticks on its own between events; it never keeps the process alive.
  const clock = setInterval(render, 250);
  clock.unref();
  return {
    update(next) {
      text = next;
      render();
    },
    note(line) {
      output.write(`${CLEAR_LINE}${line}\n`);
      render();
    },
    end() {
      clearInterval(clock);
      output.write(CLEAR_LINE);
    },
  };
}
