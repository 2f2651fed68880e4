import { createProgress } from './progress';

const recorder = () => {
  const written: string[] = [];
  return { written, write: (text: string) => written.push(text) };
};

describe('progress', () => {
  it('rewrites one line in place on a terminal, with the step and the time elapsed', () => {
    let now = 1_000;
    const output = recorder();
    const progress = createProgress(output, true, () => now);
    progress.update("start 'api': requested");
    now += 12_400;
    progress.update("start 'api': prepare the workspace");
    progress.note('the event stream dropped (reset); resuming');
    progress.end();
    expect(output.written).toEqual([
      "\r\x1b[2K⠋ start 'api': requested · 0s",
      "\r\x1b[2K⠙ start 'api': prepare the workspace · 12s",
      '\r\x1b[2Kthe event stream dropped (reset); resuming\n',
      "\r\x1b[2K⠹ start 'api': prepare the workspace · 12s",
      '\r\x1b[2K',
    ]);
  });

  it('writes a plain line each time the step changes when not on a terminal', () => {
    let now = 0;
    const output = recorder();
    const progress = createProgress(output, false, () => now);
    progress.update("stop 'api': requested");
    now = 3_000;
    progress.update("stop 'api': requested");
    progress.update("stop 'api': stop the machine");
    progress.end();
    expect(output.written).toEqual(["[   0s] stop 'api': requested\n", "[   3s] stop 'api': stop the machine\n"]);
  });
});
