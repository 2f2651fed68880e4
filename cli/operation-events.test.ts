import { trackOperation } from './operation-events';
import type { GitspaceEvent } from './types';

const actor = { type: 'user' as const, id: 'usr-ada', name: 'ada' };
let seq = 0;
const state = (
  to: GitspaceEvent['state'],
  data: Record<string, unknown> = {},
  message = `gitspace ${to}`,
): GitspaceEvent => ({
  seq: ++seq,
  type: 'state',
  state: to,
  message,
  data,
  actor,
  createdAt: new Date().toISOString(),
});
const step = (name: string): GitspaceEvent => ({
  seq: ++seq,
  type: 'step',
  message: name,
  data: { step: name },
  actor,
  createdAt: new Date().toISOString(),
});

const run = (action: 'start' | 'stop' | 'delete', events: GitspaceEvent[]) => {
  const tracker = trackOperation(action);
  for (const event of events) {
    const outcome = tracker.observe(event);
    if (outcome) return { outcome, step: tracker.step };
  }
  return { outcome: undefined, step: tracker.step };
};

describe('following one operation through the events', () => {
  it('ends a start when the gitspace runs, after its steps', () => {
    const { outcome, step: last } = run('start', [
      state('stopped', {}, "gitspace 'api' created"),
      state('starting'),
      step('ensureMachine'),
      step('prepareWorkspace'),
      state('running'),
    ]);
    expect(outcome).toEqual({ succeeded: true, state: 'running' });
    expect(last).toBe('prepareWorkspace');
  });

  it('does not take the end of a start it cancelled for the end of a stop', () => {
    // A stop during a start: the start is cancelled (stopped) before the stop's own stopping.
    const events = [
      state('stopped', {}, 'start cancelled; the machine is stopped'),
      state('stopping'),
      step('stopMachine'),
    ];
    expect(run('stop', events).outcome).toBeUndefined();
    expect(run('stop', [...events, state('stopped')]).outcome).toEqual({ succeeded: true, state: 'stopped' });
  });

  it("reports a failure with the failed step, message and cause from the error's data", () => {
    const { outcome } = run('start', [
      state('starting'),
      step('prepareWorkspace'),
      state('error', {
        action: 'start',
        step: 'prepareWorkspace',
        message: 'the repository could not be cloned',
        cause: 'CloneFailedError',
      }),
    ]);
    expect(outcome).toEqual({
      succeeded: false,
      action: 'start',
      step: 'prepareWorkspace',
      message: 'the repository could not be cloned',
      cause: 'CloneFailedError',
    });
  });

  it('reports a start that was cancelled (stopped by someone else) as not succeeded', () => {
    const { outcome } = run('start', [
      state('starting'),
      state('stopped', {}, 'start cancelled; the machine is stopped'),
    ]);
    expect(outcome).toEqual({ succeeded: false, action: 'start', message: 'start cancelled; the machine is stopped' });
  });

  it('ends a delete when the gitspace is deleted', () => {
    expect(run('delete', [state('deleting'), step('deleteMachine'), state('deleted')]).outcome).toEqual({
      succeeded: true,
      state: 'deleted',
    });
  });
});
