import { useCallback, useEffect, useRef, useState } from 'react';
import { ConfirmDialog } from '../components/dialog';
import { PageHeader } from '../components/page';
import { ErrorBanner, formatDuration, Loading, RelativeTime, StateBadge, useNow } from '../components/ui';
import { useGitspace } from '../data/hooks';
import { useGitspaceEvents } from '../data/streams';
import type { Gitspace, GitspaceEvent, Session } from '../data/types';
import { Link } from '../router';
import { useSignedIn } from '../session';
import { allows, useGitspaceActions } from './gitspace-actions';
import { DeleteWarning } from './gitspace-list';
import {
  actorLabel,
  autoStopLabel,
  capitalize,
  EVENT_TYPE_LABELS,
  IDE_LABELS,
  repositoryLabel,
  stepLabel,
} from './labels';

/** The states an operation passes through while it runs, and how its progress is titled. */
const VERBS: Partial<Record<Gitspace['state'], string>> = {
  starting: 'Starting',
  stopping: 'Stopping',
  deleting: 'Deleting',
};

/** Runs of this gitspace in the Temporal Web UI, filtered by the GitspaceId search attribute. */
export function temporalRunsUrl(session: Session, gitspaceId: string): string | undefined {
  if (!session.temporalUiUrl) return undefined;
  const base = session.temporalUiUrl.replace(/\/+$/, '');
  const namespace = encodeURIComponent(session.temporalNamespace ?? 'default');
  return `${base}/namespaces/${namespace}/workflows?query=${encodeURIComponent(`GitspaceId="${gitspaceId}"`)}`;
}

/** One gitspace: its actions, its progress while an operation runs, what went wrong, and its timeline. */
export function GitspaceDetailPage({ gitspaceId }: { gitspaceId: string }) {
  const session = useSignedIn();
  const gitspace = useGitspace(gitspaceId);
  const refreshSoon = useDebounced(gitspace.reload, 300);
  const { setData } = gitspace;
  // A state event changes what GET shows (url, lastError, operation): show the state at once, then read the rest.
  const onEvent = useCallback(
    (event: GitspaceEvent) => {
      if (event.type !== 'state' || !event.state) return;
      const state = event.state as Gitspace['state'];
      setData((current) => (current && current.state !== state ? { ...current, state } : current));
      refreshSoon();
    },
    [setData, refreshSoon],
  );
  const { events, status } = useGitspaceEvents(gitspaceId, onEvent);
  const actions = useGitspaceActions(gitspace.reload);
  const [confirmDelete, setConfirmDelete] = useState(false);
  const [deleteError, setDeleteError] = useState<unknown>();

  if (!gitspace.data) {
    return gitspace.error ? (
      <>
        <PageHeader title="Gitspace" back={{ to: '/', label: 'Gitspaces' }} />
        <ErrorBanner error={gitspace.error} title="Could not load this gitspace" />
      </>
    ) : (
      <Loading label="Loading the gitspace…" />
    );
  }
  const current = gitspace.data;
  const runsUrl = temporalRunsUrl(session, current.id);
  const button = (action: 'start' | 'stop' | 'retry', label: string, primary = false) =>
    allows(current, action) && (
      <button
        type="button"
        className={primary ? 'button button-primary' : 'button'}
        disabled={actions.busy !== undefined}
        onClick={() => void actions.act(current, action)}
      >
        {actions.busy === action ? `${label}…` : label}
      </button>
    );

  return (
    <>
      <PageHeader
        title={current.name}
        back={{ to: '/', label: 'Gitspaces' }}
        subtitle={
          <span className="subtitle-line">
            <StateBadge state={current.state} />
            <span className="mono">{repositoryLabel(current.repository.url)}</span>
            {current.repository.branch && <span className="chip">{current.repository.branch}</span>}
          </span>
        }
        actions={
          <>
            {allows(current, 'open') && (
              <button
                type="button"
                className="button button-primary"
                disabled={actions.busy === 'open'}
                onClick={() => actions.open(current)}
              >
                Open in a new tab ↗
              </button>
            )}
            {/* From error, Retry is on the failure card and in the timeline, beside what failed. */}
            {button('start', 'Start', current.state === 'stopped')}
            {button('stop', 'Stop')}
            {allows(current, 'delete') && (
              <button
                type="button"
                className="button button-danger-quiet"
                onClick={() => {
                  setDeleteError(undefined);
                  setConfirmDelete(true);
                }}
              >
                Delete
              </button>
            )}
          </>
        }
      />

      <div aria-live="polite" className="visually-hidden">
        {`${current.name} is ${current.state}`}
      </div>

      {VERBS[current.state] && <Progress gitspace={current} events={events} />}
      {current.state === 'error' && current.lastError && (
        <section className="card card-error" aria-labelledby="failure-title">
          <h2 id="failure-title">
            {capitalize(current.lastError.action)} failed at “{stepLabel(current.lastError.step)}”
          </h2>
          <p>{current.lastError.message}</p>
          {current.lastError.cause && (
            <p className="muted small">
              Cause: <span className="mono">{current.lastError.cause}</span>
            </p>
          )}
          <div className="card-actions">
            {button('retry', `Retry the ${current.lastError.action}`, true)}
            {runsUrl && (
              <a href={runsUrl} target="_blank" rel="noreferrer" className="button button-quiet">
                See the run in Temporal ↗
              </a>
            )}
          </div>
        </section>
      )}

      <div className="detail-grid">
        <section className="card" aria-labelledby="details-title">
          <h2 id="details-title">Details</h2>
          <dl className="details">
            <dt>Repository</dt>
            <dd className="mono break">{current.repository.url}</dd>
            <dt>Branch</dt>
            <dd>{current.repository.branch ?? 'default branch'}</dd>
            <dt>Credentials</dt>
            <dd>
              {current.repository.tokenRef ? (
                <>
                  secret <span className="mono">{current.repository.tokenRef}</span> in the runner’s store
                </>
              ) : current.repository.hasToken ? (
                'an access token (sealed)'
              ) : (
                'none'
              )}
            </dd>
            <dt>Infrastructure</dt>
            <dd>
              {session.user.role === 'admin' ? (
                <Link to={`/admin/infrastructures/${encodeURIComponent(current.infrastructureId)}`}>
                  {current.infrastructureId}
                </Link>
              ) : (
                current.infrastructureId
              )}
            </dd>
            <dt>Machine</dt>
            <dd>{current.machineId}</dd>
            <dt>IDE</dt>
            <dd>{IDE_LABELS[current.ide]}</dd>
            <dt>Owner</dt>
            {/* The API gives the owner's id: the signed-in user is named, anyone else shown by id. */}
            <dd>{current.owner === session.user.id ? `${session.user.name} (you)` : current.owner}</dd>
            {current.autoStop && (
              <>
                <dt>Auto-stop</dt>
                <dd>{autoStopLabel(current.autoStop)}</dd>
              </>
            )}
            <dt>Created</dt>
            <dd>
              <RelativeTime iso={current.createdAt} />
            </dd>
            <dt>ID</dt>
            <dd className="mono">{current.id}</dd>
          </dl>
          {runsUrl && (
            <p>
              <a href={runsUrl} target="_blank" rel="noreferrer">
                Its runs in the Temporal Web UI ↗
              </a>
            </p>
          )}
        </section>

        <section className="card timeline-card" aria-labelledby="timeline-title">
          <div className="card-title-row">
            <h2 id="timeline-title">Timeline</h2>
            <span className={`live live-${status}`}>
              <span className="live-dot" aria-hidden="true" />
              {status === 'live' ? 'Live' : status === 'connecting' ? 'Connecting…' : 'Reconnecting…'}
            </span>
          </div>
          <Timeline
            events={events}
            gitspace={current}
            onRetry={allows(current, 'retry') ? () => void actions.act(current, 'retry') : undefined}
          />
        </section>
      </div>

      {confirmDelete && (
        <ConfirmDialog
          title={`Delete ${current.name}?`}
          confirmLabel="Delete gitspace"
          busy={actions.busy === 'delete'}
          error={deleteError}
          onClose={() => setConfirmDelete(false)}
          onConfirm={() =>
            actions.remove(current).then(
              () => setConfirmDelete(false),
              (error: unknown) => setDeleteError(error),
            )
          }
        >
          <DeleteWarning gitspace={current} />
        </ConfirmDialog>
      )}
    </>
  );
}

/** Which step the running operation is on, the steps it has done, and for how long it has been running. */
function Progress({ gitspace, events }: { gitspace: Gitspace; events: GitspaceEvent[] }) {
  const now = useNow(1000);
  const operation = gitspace.operation?.status === 'running' ? gitspace.operation : undefined;
  // The steps since the operation began: after the last event that moved the gitspace into this state.
  const began = events.findLastIndex((event) => event.type === 'state' && event.state === gitspace.state);
  const steps = events
    .slice(began + 1)
    .filter((event) => event.type === 'step' && typeof event.data.step === 'string')
    .map((event) => event.data.step as string);
  const current = steps.at(-1) ?? operation?.step;
  const since = operation?.createdAt ?? events[began]?.createdAt;
  const elapsed = since ? formatDuration((now - Date.parse(since)) / 1000) : undefined;
  const verb = VERBS[gitspace.state] ?? 'Working';
  return (
    <section className="card card-progress" aria-labelledby="progress-title">
      <div className="card-title-row">
        <h2 id="progress-title">
          {verb}
          {current ? `: ${stepLabel(current)}` : '…'}
        </h2>
        {elapsed && (
          <span className="muted mono" aria-label={`elapsed ${elapsed}`}>
            {elapsed}
          </span>
        )}
      </div>
      <progress aria-label={`${verb}, in progress`} />
      {steps.length > 0 && (
        <ol className="steps">
          {steps.map((step, index) => (
            <li
              key={`${step}-${index}`}
              className={index === steps.length - 1 ? 'step step-current' : 'step step-done'}
            >
              <span className="step-mark" aria-hidden="true">
                {index === steps.length - 1 ? '' : '✓'}
              </span>
              {stepLabel(step)}
              <span className="visually-hidden">{index === steps.length - 1 ? ' (under way)' : ' (done)'}</span>
            </li>
          ))}
        </ol>
      )}
    </section>
  );
}

/** The gitspace's events, newest first: what happened, at which step, who asked, and errors with a way out. */
function Timeline({
  events,
  gitspace,
  onRetry,
}: {
  events: GitspaceEvent[];
  gitspace: Gitspace;
  onRetry?: () => void;
}) {
  if (events.length === 0) return <p className="muted">No events yet.</p>;
  const lastError = events.findLast((event) => event.type === 'state' && event.state === 'error');
  return (
    <ol className="timeline">
      {events.toReversed().map((event) => {
        const failed = event.type === 'state' && event.state === 'error';
        const step = typeof event.data.step === 'string' ? event.data.step : undefined;
        const warning = typeof event.data.warning === 'string' ? event.data.warning : undefined;
        const cause = typeof event.data.cause === 'string' ? event.data.cause : undefined;
        return (
          <li key={event.seq} className={`event event-${event.type}${failed ? ' event-error' : ''}`}>
            <span className="event-marker" aria-hidden="true" />
            <div className="event-body">
              <div className="event-head">
                {event.type === 'state' && event.state ? (
                  <StateBadge state={event.state as Gitspace['state']} />
                ) : (
                  <span className="event-type">{EVENT_TYPE_LABELS[event.type] ?? event.type}</span>
                )}
                <span className="muted small">
                  <RelativeTime iso={event.createdAt} /> · by{' '}
                  <span title={event.actor.type === 'unknown' ? event.actor.reason : undefined}>
                    {actorLabel(event.actor)}
                  </span>
                </span>
              </div>
              <p className={failed ? 'error-text' : undefined}>
                {event.type === 'step' && step ? capitalize(stepLabel(step)) : event.message}
              </p>
              {failed && cause && (
                <p className="muted small">
                  Cause: <span className="mono">{cause}</span>
                </p>
              )}
              {warning && <p className="warning-text small">{warning}</p>}
              {failed && event === lastError && gitspace.state === 'error' && onRetry && (
                <button type="button" className="button button-small" onClick={onRetry}>
                  Retry
                </button>
              )}
            </div>
          </li>
        );
      })}
    </ol>
  );
}

/** `run` at most once per `ms`, after the last call (state events come in bursts when a stream replays). */
function useDebounced(run: () => void, ms: number): () => void {
  const timer = useRef<number | undefined>(undefined);
  const latest = useRef(run);
  latest.current = run;
  useEffect(() => () => window.clearTimeout(timer.current), []);
  return useCallback(() => {
    window.clearTimeout(timer.current);
    timer.current = window.setTimeout(() => latest.current(), ms);
  }, [ms]);
}
