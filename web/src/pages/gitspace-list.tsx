import { useState } from 'react';
import type { GitspaceState } from '../../../contracts/lifecycle';
import { ConfirmDialog } from '../components/dialog';
import { PageHeader } from '../components/page';
import { ErrorBanner, Loading, RelativeTime, StateBadge } from '../components/ui';
import { ACTIVE_STATES, useGitspaceList, type StreamStatus } from '../data/streams';
import type { Gitspace } from '../data/types';
import { Link, navigate, useLocation } from '../router';
import { useSignedIn } from '../session';
import { allows, useGitspaceActions } from './gitspace-actions';
import { capitalize, IDE_LABELS, repositoryLabel, stepLabel } from './labels';

const FILTERS = {
  all: { label: 'All', states: ACTIVE_STATES, empty: 'You have no gitspaces yet.' },
  running: { label: 'Running', states: ['running'], empty: 'No gitspace is running.' },
  stopped: { label: 'Stopped', states: ['stopped'], empty: 'No gitspace is stopped.' },
  error: { label: 'Error', states: ['error'], empty: 'No gitspace has failed. Good.' },
  deleted: { label: 'Deleted', states: ['deleted'], empty: 'No deleted gitspaces.' },
} satisfies Record<string, { label: string; states: readonly GitspaceState[]; empty: string }>;
type FilterName = keyof typeof FILTERS;

/** "My gitspaces": filtered, a page at a time, live from the change stream. */
export function GitspaceListPage() {
  const { user } = useSignedIn();
  const { search } = useLocation();
  const asked = search.get('state');
  const filter: FilterName = asked && asked in FILTERS ? (asked as FilterName) : 'all';
  const list = useGitspaceList(FILTERS[filter].states);
  const actions = useGitspaceActions();
  const [deleting, setDeleting] = useState<Gitspace>();
  const [deleteError, setDeleteError] = useState<unknown>();

  const choose = (name: FilterName) => navigate(name === 'all' ? '/' : `/?state=${name}`, { replace: true });

  return (
    <>
      <PageHeader
        title={user.role === 'admin' ? 'Gitspaces' : 'My gitspaces'}
        subtitle={user.role === 'admin' ? 'Every user’s gitspaces: you are an administrator.' : undefined}
        actions={
          <Link to="/gitspaces/new" className="button button-primary">
            + New gitspace
          </Link>
        }
      />
      <div className="toolbar">
        <fieldset className="segmented">
          <legend className="visually-hidden">Show gitspaces</legend>
          {(Object.keys(FILTERS) as FilterName[]).map((name) => (
            <label key={name} className={filter === name ? 'segment segment-checked' : 'segment'}>
              <input
                type="radio"
                name="state-filter"
                value={name}
                checked={filter === name}
                onChange={() => choose(name)}
              />
              {FILTERS[name].label}
            </label>
          ))}
        </fieldset>
        <LiveStatus status={list.status} />
      </div>
      <ErrorBanner error={list.error} title="Could not load your gitspaces" />
      {list.items.length === 0 && list.loading && <Loading label="Loading gitspaces…" />}
      {list.items.length === 0 && !list.loading && !list.error && (
        <div className="empty">
          <p>{FILTERS[filter].empty}</p>
          {filter === 'all' && (
            <Link to="/gitspaces/new" className="button button-primary">
              Create a gitspace
            </Link>
          )}
        </div>
      )}
      {list.items.length > 0 && (
        <ul className="gitspace-list" aria-label="Gitspaces">
          {list.items.map((gitspace) => (
            <GitspaceRow
              key={gitspace.id}
              gitspace={gitspace}
              actions={actions}
              onDelete={() => {
                setDeleteError(undefined);
                setDeleting(gitspace);
              }}
            />
          ))}
        </ul>
      )}
      {list.nextCursor && (
        <div className="load-more">
          <button type="button" className="button" onClick={list.loadMore} disabled={list.loading}>
            {list.loading ? 'Loading…' : 'Show more'}
          </button>
        </div>
      )}
      {deleting && (
        <ConfirmDialog
          title={`Delete ${deleting.name}?`}
          confirmLabel="Delete gitspace"
          busy={actions.busy === 'delete'}
          error={deleteError}
          onClose={() => setDeleting(undefined)}
          onConfirm={() =>
            actions.remove(deleting).then(
              () => setDeleting(undefined),
              (error: unknown) => setDeleteError(error),
            )
          }
        >
          <DeleteWarning gitspace={deleting} />
        </ConfirmDialog>
      )}
    </>
  );
}

export function DeleteWarning({ gitspace }: { gitspace: Gitspace }) {
  return (
    <p>
      The machine of <strong>{gitspace.name}</strong> and its disks are deleted, with any work not pushed to{' '}
      <span className="mono">{repositoryLabel(gitspace.repository.url)}</span>. Its record and events stay readable.
    </p>
  );
}

function LiveStatus({ status }: { status: StreamStatus }) {
  const words = { connecting: 'Connecting…', live: 'Live', reconnecting: 'Reconnecting…' }[status];
  return (
    <span className={`live live-${status}`} title="States update as they change">
      <span className="live-dot" aria-hidden="true" />
      {words}
    </span>
  );
}

function GitspaceRow({
  gitspace,
  actions,
  onDelete,
}: {
  gitspace: Gitspace;
  actions: ReturnType<typeof useGitspaceActions>;
  onDelete: () => void;
}) {
  const step = gitspace.operation?.status === 'running' ? gitspace.operation.step : undefined;
  return (
    <li className="gitspace-row">
      <div className="gitspace-main">
        <Link to={`/gitspaces/${encodeURIComponent(gitspace.id)}`} className="gitspace-name">
          {gitspace.name}
        </Link>
        <span className="repository-line">
          <span className="mono muted ellipsis" title={gitspace.repository.url}>
            {repositoryLabel(gitspace.repository.url)}
          </span>
          {gitspace.repository.branch && <span className="chip">{gitspace.repository.branch}</span>}
        </span>
      </div>
      <div className="gitspace-state">
        <StateBadge state={gitspace.state} />
        {step && <span className="muted small">{capitalize(stepLabel(step))}…</span>}
        {gitspace.state === 'error' && gitspace.lastError && (
          <span className="error-text small">
            {gitspace.lastError.action} failed at “{stepLabel(gitspace.lastError.step)}”
          </span>
        )}
      </div>
      <div className="gitspace-meta muted small">
        <span>
          {gitspace.infrastructureId} · {gitspace.machineId}
        </span>
        <span>{IDE_LABELS[gitspace.ide]}</span>
      </div>
      <div className="gitspace-updated muted small">
        Updated <RelativeTime iso={gitspace.updatedAt} />
      </div>
      <div className="gitspace-actions">
        {allows(gitspace, 'open') && (
          <button
            type="button"
            className="button button-primary"
            onClick={() => actions.open(gitspace)}
            aria-label={`Open ${gitspace.name}`}
          >
            Open
          </button>
        )}
        {allows(gitspace, 'start') && !allows(gitspace, 'retry') && (
          <button
            type="button"
            className="button"
            onClick={() => void actions.act(gitspace, 'start')}
            aria-label={`Start ${gitspace.name}`}
          >
            Start
          </button>
        )}
        {allows(gitspace, 'retry') && (
          <button
            type="button"
            className="button"
            onClick={() => void actions.act(gitspace, 'retry')}
            aria-label={`Retry ${gitspace.name}`}
          >
            Retry
          </button>
        )}
        {allows(gitspace, 'stop') && (
          <button
            type="button"
            className="button"
            onClick={() => void actions.act(gitspace, 'stop')}
            aria-label={`Stop ${gitspace.name}`}
          >
            Stop
          </button>
        )}
        {allows(gitspace, 'delete') && (
          <button
            type="button"
            className="button button-quiet"
            onClick={onDelete}
            aria-label={`Delete ${gitspace.name}`}
          >
            Delete
          </button>
        )}
      </div>
    </li>
  );
}
