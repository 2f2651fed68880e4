import { useState } from 'react';
import { useAnnounce } from '../../components/announcer';
import { PageHeader } from '../../components/page';
import { ErrorBanner, Loading, RelativeTime, TableHead } from '../../components/ui';
import { useInfrastructure, useInfrastructures } from '../../data/hooks';
import { Link, navigate } from '../../router';
import { AdminTabs } from './admin-tabs';
import { InfrastructureFormDialog } from './infrastructure-form';

/** Every infrastructure, its provider, gateway and runners at a glance. */
export function AdminInfrastructuresPage() {
  const list = useInfrastructures();
  const announce = useAnnounce();
  const [creating, setCreating] = useState(false);
  const items = list.data?.items ?? [];
  return (
    <>
      <AdminTabs />
      <PageHeader
        title="Infrastructures"
        subtitle="Where gitspaces run: a cloud project or account, or the local sandbox, each served by its runners."
        actions={
          <button type="button" className="button button-primary" onClick={() => setCreating(true)}>
            + New infrastructure
          </button>
        }
      />
      <ErrorBanner error={list.error} title="Could not load the infrastructures" />
      {list.loading && !list.data && <Loading />}
      {list.data && items.length === 0 && <p className="empty">No infrastructure yet: create one to run gitspaces.</p>}
      {items.length > 0 && (
        <div className="table-wrap">
          <table>
            <caption className="visually-hidden">Infrastructures</caption>
            <TableHead columns={['Name', 'Provider', 'Gateway', 'Runners', 'Created']} />
            <tbody>
              {items.map((infrastructure) => (
                <tr key={infrastructure.id}>
                  <th scope="row">
                    <Link to={`/admin/infrastructures/${encodeURIComponent(infrastructure.id)}`}>
                      {infrastructure.name}
                    </Link>
                  </th>
                  <td>
                    <span className="chip">{infrastructure.provider}</span>
                  </td>
                  <td className="mono break">{infrastructure.gatewayUrl}</td>
                  <td>
                    <RunnerSummary infrastructureId={infrastructure.id} />
                  </td>
                  <td>
                    <RelativeTime iso={infrastructure.createdAt} />
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      {creating && (
        <InfrastructureFormDialog
          onClose={() => setCreating(false)}
          onDone={(created) => {
            setCreating(false);
            announce(`Infrastructure '${created.name}' created; add its machines next.`, 'success');
            navigate(`/admin/infrastructures/${encodeURIComponent(created.id)}`);
          }}
        />
      )}
    </>
  );
}

/** How many runners serve the infrastructure, and whether they are up to date (GET one lists them). */
function RunnerSummary({ infrastructureId }: { infrastructureId: string }) {
  const detail = useInfrastructure(infrastructureId);
  if (detail.error) return <span className="muted">unknown</span>;
  if (!detail.data) return <span className="muted">…</span>;
  const runners = detail.data.runners;
  if (!runners) return <span className="muted">Temporal did not answer</span>;
  if (runners.length === 0) return <span className="error-text">none polling</span>;
  const outdated = runners.filter((runner) => !runner.upToDate).length;
  return (
    <span className={outdated ? 'warning-text' : undefined}>
      {runners.length} {runners.length === 1 ? 'runner' : 'runners'}
      {outdated ? `, ${outdated} out of date` : ', up to date'}
    </span>
  );
}
