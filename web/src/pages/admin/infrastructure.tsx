import { useState } from 'react';
import { useAnnounce } from '../../components/announcer';
import { ConfirmDialog } from '../../components/dialog';
import { PageHeader } from '../../components/page';
import { ErrorBanner, Loading, RelativeTime, TableHead } from '../../components/ui';
import { useInfrastructure, useMachines } from '../../data/hooks';
import { infrastructures } from '../../data/requests';
import type { InfrastructureWithRunners, Machine } from '../../data/types';
import { navigate } from '../../router';
import { AdminTabs } from './admin-tabs';
import { InfrastructureFormDialog } from './infrastructure-form';
import { MachineFormDialog } from './machine-form';

/** One infrastructure: its runners, its machines (create, edit, delete) and its settings. */
export function AdminInfrastructurePage({ infrastructureId }: { infrastructureId: string }) {
  const detail = useInfrastructure(infrastructureId);
  const machines = useMachines(infrastructureId);
  const announce = useAnnounce();
  const [editing, setEditing] = useState(false);
  const [deleting, setDeleting] = useState(false);
  const [deleteError, setDeleteError] = useState<unknown>();
  const [busy, setBusy] = useState(false);
  const [machineForm, setMachineForm] = useState<{ machine?: Machine }>();
  const [machineToDelete, setMachineToDelete] = useState<Machine>();

  const infrastructure = detail.data;
  if (!infrastructure) {
    return (
      <>
        <AdminTabs />
        {detail.error ? (
          <>
            <PageHeader title="Infrastructure" back={{ to: '/admin/infrastructures', label: 'Infrastructures' }} />
            <ErrorBanner error={detail.error} title="Could not load this infrastructure" />
          </>
        ) : (
          <Loading />
        )}
      </>
    );
  }

  const remove = async () => {
    setBusy(true);
    try {
      await infrastructures.remove(infrastructure.id);
      announce(`Infrastructure '${infrastructure.name}' deleted.`, 'success');
      navigate('/admin/infrastructures', { replace: true });
    } catch (error) {
      setDeleteError(error);
      setBusy(false);
    }
  };

  return (
    <>
      <AdminTabs />
      <PageHeader
        title={infrastructure.name}
        back={{ to: '/admin/infrastructures', label: 'Infrastructures' }}
        subtitle={
          <span className="subtitle-line">
            <span className="chip">{infrastructure.provider}</span>
            <span className="muted">
              task queue <span className="mono">{infrastructure.taskQueue}</span>
            </span>
          </span>
        }
        actions={
          <>
            <button type="button" className="button" onClick={() => setEditing(true)}>
              Edit settings
            </button>
            <button
              type="button"
              className="button button-danger-quiet"
              onClick={() => {
                setDeleteError(undefined);
                setDeleting(true);
              }}
            >
              Delete
            </button>
          </>
        }
      />

      <Runners infrastructure={infrastructure} />

      <section className="card" aria-labelledby="machines-title">
        <div className="card-title-row">
          <h2 id="machines-title">Machines</h2>
          <button type="button" className="button" onClick={() => setMachineForm({})}>
            + Add machine
          </button>
        </div>
        <p className="muted small">The sizes developers choose from when they create a gitspace here.</p>
        <ErrorBanner error={machines.error} title="Could not load the machines" />
        {machines.data?.items.length === 0 && <p className="empty">No machines yet: developers cannot use it.</p>}
        {(machines.data?.items.length ?? 0) > 0 && (
          <div className="table-wrap">
            <table>
              <TableHead columns={['Name', 'Machine type', 'Disk', 'Region / zone', 'Image', 'Warm pool']} actions />
              <tbody>
                {machines.data?.items.map((machine) => (
                  <tr key={machine.id}>
                    <th scope="row">{machine.name}</th>
                    <td className="mono">{machine.machineType}</td>
                    <td>{machine.diskSizeGb} GB</td>
                    <td>{[machine.region, machine.zone].filter(Boolean).join(' / ') || '—'}</td>
                    <td className="mono break">{machine.image ?? '—'}</td>
                    <td>
                      {machine.warmPoolSize > 0
                        ? `${machine.warmPool.ready} of ${machine.warmPoolSize} ready${machine.warmPool.preparing > 0 ? `, ${machine.warmPool.preparing} being made` : ''}`
                        : '—'}
                    </td>
                    <td className="row-actions">
                      <button
                        type="button"
                        className="button button-small"
                        aria-label={`Edit machine ${machine.name}`}
                        onClick={() => setMachineForm({ machine })}
                      >
                        Edit
                      </button>
                      <button
                        type="button"
                        className="button button-small button-danger-quiet"
                        aria-label={`Delete machine ${machine.name}`}
                        onClick={() => {
                          setDeleteError(undefined);
                          setMachineToDelete(machine);
                        }}
                      >
                        Delete
                      </button>
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        )}
      </section>

      <section className="card" aria-labelledby="settings-title">
        <h2 id="settings-title">Settings</h2>
        <dl className="details">
          <dt>Gateway URL</dt>
          <dd className="mono break">{infrastructure.gatewayUrl}</dd>
          <dt>Runner keys</dt>
          <dd>
            {infrastructure.runnerPublicKeys.length === 0 ? (
              'none (repository tokens cannot be sealed here)'
            ) : (
              <ul className="plain">
                {infrastructure.runnerPublicKeys.map((key) => (
                  <li key={key} className="mono break">
                    {key}
                  </li>
                ))}
              </ul>
            )}
          </dd>
          <dt>Sealed tokens</dt>
          <dd>
            {Object.entries(infrastructure.sealedTokens).length === 0
              ? 'none'
              : Object.entries(infrastructure.sealedTokens)
                  .map(([key, count]) => `${key}: ${count}`)
                  .join(', ')}
          </dd>
          <dt>Updated</dt>
          <dd>
            <RelativeTime iso={infrastructure.updatedAt} />
          </dd>
        </dl>
        <h3>Config</h3>
        <pre className="code">{JSON.stringify(infrastructure.config, null, 2)}</pre>
      </section>

      {editing && (
        <InfrastructureFormDialog
          existing={infrastructure}
          onClose={() => setEditing(false)}
          onDone={() => {
            setEditing(false);
            announce(`Infrastructure '${infrastructure.name}' saved.`, 'success');
            detail.reload();
          }}
        />
      )}
      {deleting && (
        <ConfirmDialog
          title={`Delete ${infrastructure.name}?`}
          confirmLabel="Delete infrastructure"
          busy={busy}
          error={deleteError}
          onClose={() => setDeleting(false)}
          onConfirm={() => void remove()}
        >
          <p>
            Its machines go with it. The API refuses while gitspaces that are not deleted use it; their records and
            events stay readable.
          </p>
        </ConfirmDialog>
      )}
      {machineForm && (
        <MachineFormDialog
          infrastructureId={infrastructure.id}
          existing={machineForm.machine}
          onClose={() => setMachineForm(undefined)}
          onDone={(machine) => {
            setMachineForm(undefined);
            announce(`Machine '${machine.name}' saved.`, 'success');
            machines.reload();
          }}
        />
      )}
      {machineToDelete && (
        <ConfirmDialog
          title={`Delete machine ${machineToDelete.name}?`}
          confirmLabel="Delete machine"
          busy={busy}
          error={deleteError}
          onClose={() => setMachineToDelete(undefined)}
          onConfirm={() => {
            setBusy(true);
            infrastructures
              .removeMachine(infrastructure.id, machineToDelete.id)
              .then(
                () => {
                  announce(`Machine '${machineToDelete.name}' deleted.`, 'success');
                  setMachineToDelete(undefined);
                  machines.reload();
                },
                (error: unknown) => setDeleteError(error),
              )
              .finally(() => setBusy(false));
          }}
        >
          <p>Developers can no longer choose it. Gitspaces already made with it keep their machines.</p>
        </ConfirmDialog>
      )}
    </>
  );
}

/** The runners polling the infrastructure's task queue, as Temporal last saw them. */
function Runners({ infrastructure }: { infrastructure: InfrastructureWithRunners }) {
  const runners = infrastructure.runners;
  return (
    <section className="card" aria-labelledby="runners-title">
      <h2 id="runners-title">Runners</h2>
      <p className="muted small">
        This control plane needs runner contract version {infrastructure.runnerContractVersion}.
      </p>
      {!runners && <p className="warning-text">Temporal could not be asked which runners poll this infrastructure.</p>}
      {runners?.length === 0 && (
        <p className="banner banner-warning">
          No runner is polling <span className="mono">{infrastructure.taskQueue}</span>: starts here will fail. Run one
          with <span className="mono">GITSPACES_INFRASTRUCTURE_ID={infrastructure.id} npm run runner</span>.
        </p>
      )}
      {runners && runners.length > 0 && (
        <div className="table-wrap">
          <table>
            <TableHead columns={['Identity', 'Version', 'Contract', 'Status', 'Last seen']} />
            <tbody>
              {runners.map((runner) => (
                <tr key={runner.identity}>
                  <th scope="row" className="mono break">
                    {runner.identity}
                  </th>
                  <td>{runner.version ?? 'unknown'}</td>
                  <td>{runner.contractVersion ?? 1}</td>
                  <td>
                    {runner.upToDate ? (
                      <span className="pill pill-ok">Up to date</span>
                    ) : (
                      <span className="pill pill-warn">Out of date: upgrade it</span>
                    )}
                  </td>
                  <td>{runner.lastAccessTime ? <RelativeTime iso={runner.lastAccessTime} /> : '—'}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </section>
  );
}
