import { formatDuration, parseDuration } from './args';
import { autoStopBody } from './commands/autostop';
import { UsageError } from './errors';
import { autoStopLabel, formatEvent } from './format';

/** The command line's auto-stop: durations as people type them, the body the API takes, and what `show`/`logs` print. */
describe('auto-stop on the command line', () => {
  it('reads durations as seconds; never is 0 and default is null', () => {
    expect(parseDuration('90s')).toBe(90);
    expect(parseDuration('30m')).toBe(1800);
    expect(parseDuration('8h')).toBe(28800);
    expect(parseDuration('1h30m')).toBe(5400);
    expect(parseDuration('2d')).toBe(172800);
    expect(parseDuration('600')).toBe(600);
    expect(parseDuration('never')).toBe(0);
    expect(parseDuration('Default')).toBeNull();
    for (const bad of ['', '30 minutes', '1.5h', 'h', '-5m', '30m and more'])
      expect(() => parseDuration(bad)).toThrow(UsageError);
    expect(formatDuration(5400)).toBe('1h30m');
    expect(formatDuration(45)).toBe('45s');
  });

  it('sends only the flags given', () => {
    expect(autoStopBody(undefined, undefined)).toEqual({});
    expect(autoStopBody(1800, undefined)).toEqual({ autoStop: { idleTimeoutSeconds: 1800 } });
    expect(autoStopBody(null, 0)).toEqual({ autoStop: { idleTimeoutSeconds: null, maxLifetimeSeconds: 0 } });
  });

  it('shows the effective policy and a readable warning event', () => {
    expect(
      autoStopLabel({
        idleTimeout: { seconds: 1800, source: 'gitspace' },
        maxLifetime: { seconds: null, source: 'none' },
      }),
    ).toBe('idle 30m (gitspace), max lifetime never');
    const [line] = formatEvent({
      seq: 7,
      type: 'auto-stop-warning',
      message: 'idle: stops at 14:05:00 UTC unless used (idle timeout 30 min)',
      data: {},
      actor: { type: 'auto-stop', reason: 'idle' },
      createdAt: '2030-01-01T14:00:00.000Z',
    });
    expect(line).toMatch(/ auto-stop +warning +idle: stops at 14:05:00 UTC unless used/);
  });
});
