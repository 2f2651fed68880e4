import { actorLabel, autoStopLabel, EVENT_TYPE_LABELS } from './labels';

describe('auto-stop words in the dashboard', () => {
  test('names the auto-stop and its reason on events, and its warning', () => {
    expect(actorLabel({ type: 'auto-stop', reason: 'idle' })).toBe('auto-stop (idle)');
    expect(actorLabel({ type: 'auto-stop', reason: 'max-lifetime' })).toBe('auto-stop (maximum lifetime)');
    expect(actorLabel({ type: 'auto-stop' })).toBe('auto-stop');
    expect(EVENT_TYPE_LABELS['auto-stop-warning']).toBe('Auto-stop warning');
  });

  test("says a gitspace's policy and where each value comes from", () => {
    expect(
      autoStopLabel({
        idleTimeout: { seconds: 1800, source: 'infrastructure' },
        maxLifetime: { seconds: 5400, source: 'gitspace' },
      }),
    ).toBe("after 30 min idle (the infrastructure's), after 1 h 30 min running (its own)");
    expect(
      autoStopLabel({
        idleTimeout: { seconds: null, source: 'gitspace' },
        maxLifetime: { seconds: null, source: 'none' },
      }),
    ).toBe('never stops by itself');
  });
});
