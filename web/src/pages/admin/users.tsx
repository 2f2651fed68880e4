import { useState } from 'react';
import { useAnnounce } from '../../components/announcer';
import { ConfirmDialog, Dialog, FormDialog } from '../../components/dialog';
import { PageHeader } from '../../components/page';
import { ErrorBanner, Field, Loading, messageOf, RelativeTime, SecretValue, TableHead } from '../../components/ui';
import { fieldErrors } from '../../data/client';
import { useUsers } from '../../data/hooks';
import { users } from '../../data/requests';
import type { User } from '../../data/types';
import { useSignedIn } from '../../session';
import { AdminTabs } from './admin-tabs';
import { TokensDialog } from './tokens';

/** Users: create (their token shown once), disable or enable, change role, manage tokens, delete. */
export function AdminUsersPage() {
  const me = useSignedIn().user;
  const list = useUsers();
  const announce = useAnnounce();
  const [creating, setCreating] = useState(false);
  const [tokensOf, setTokensOf] = useState<User>();
  const [deleting, setDeleting] = useState<User>();
  const [deleteError, setDeleteError] = useState<unknown>();
  const [busy, setBusy] = useState<string>();

  const update = (user: User, changes: { disabled?: boolean; role?: User['role'] }, done: string) => {
    setBusy(user.id);
    users
      .update(user.id, changes)
      .then(
        () => {
          announce(done, 'success');
          list.reload();
        },
        (error: unknown) => announce(`Could not change '${user.name}': ${messageOf(error)}`, 'error'),
      )
      .finally(() => setBusy(undefined));
  };

  const items = list.data?.items ?? [];
  return (
    <>
      <AdminTabs />
      <PageHeader
        title="Users"
        subtitle="Who may sign in and create gitspaces. Users from the identity provider appear on their first sign-in."
        actions={
          <button type="button" className="button button-primary" onClick={() => setCreating(true)}>
            + New user
          </button>
        }
      />
      <ErrorBanner error={list.error} title="Could not load the users" />
      {list.loading && !list.data && <Loading />}
      {items.length > 0 && (
        <div className="table-wrap">
          <table>
            <caption className="visually-hidden">Users</caption>
            <TableHead columns={['Name', 'Role', 'Status', 'Created']} actions />
            <tbody>
              {items.map((user) => {
                const self = user.id === me.id;
                return (
                  <tr key={user.id}>
                    <th scope="row">
                      {user.name}
                      {self && <span className="muted"> (you)</span>}
                    </th>
                    <td>{user.role === 'admin' ? 'Administrator' : 'Member'}</td>
                    <td>
                      {user.disabled ? (
                        <span className="pill pill-warn">Disabled</span>
                      ) : (
                        <span className="pill pill-ok">Active</span>
                      )}
                    </td>
                    <td>
                      <RelativeTime iso={user.createdAt} />
                    </td>
                    <td className="row-actions">
                      <button
                        type="button"
                        className="button button-small"
                        aria-label={`Tokens of ${user.name}`}
                        onClick={() => setTokensOf(user)}
                      >
                        Tokens
                      </button>
                      {!self && (
                        <>
                          <button
                            type="button"
                            className="button button-small"
                            disabled={busy === user.id}
                            aria-label={`${user.role === 'admin' ? 'Make member' : 'Make administrator'}: ${user.name}`}
                            onClick={() =>
                              update(
                                user,
                                { role: user.role === 'admin' ? 'member' : 'admin' },
                                `'${user.name}' is now ${user.role === 'admin' ? 'a member' : 'an administrator'}.`,
                              )
                            }
                          >
                            {user.role === 'admin' ? 'Make member' : 'Make admin'}
                          </button>
                          <button
                            type="button"
                            className="button button-small"
                            disabled={busy === user.id}
                            aria-label={`${user.disabled ? 'Enable' : 'Disable'} ${user.name}`}
                            onClick={() =>
                              update(
                                user,
                                { disabled: !user.disabled },
                                `'${user.name}' ${user.disabled ? 'can sign in again' : 'is disabled: their sessions and tokens stop working'}.`,
                              )
                            }
                          >
                            {user.disabled ? 'Enable' : 'Disable'}
                          </button>
                          <button
                            type="button"
                            className="button button-small button-danger-quiet"
                            aria-label={`Delete ${user.name}`}
                            onClick={() => {
                              setDeleteError(undefined);
                              setDeleting(user);
                            }}
                          >
                            Delete
                          </button>
                        </>
                      )}
                    </td>
                  </tr>
                );
              })}
            </tbody>
          </table>
        </div>
      )}
      {creating && (
        <CreateUserDialog
          onClose={() => {
            setCreating(false);
            list.reload();
          }}
        />
      )}
      {tokensOf && <TokensDialog user={tokensOf} onClose={() => setTokensOf(undefined)} />}
      {deleting && (
        <ConfirmDialog
          title={`Delete ${deleting.name}?`}
          confirmLabel="Delete user"
          busy={busy === deleting.id}
          error={deleteError}
          onClose={() => setDeleting(undefined)}
          onConfirm={() => {
            setBusy(deleting.id);
            users
              .remove(deleting.id)
              .then(
                () => {
                  announce(`'${deleting.name}' deleted; their gitspaces are stopped, not lost.`, 'success');
                  setDeleting(undefined);
                  list.reload();
                },
                (error: unknown) => setDeleteError(error),
              )
              .finally(() => setBusy(undefined));
          }}
        >
          <p>
            <strong>{deleting.name}</strong> can no longer sign in and their tokens stop working. Their gitspaces are
            stopped, not lost: an administrator still sees them.
          </p>
        </ConfirmDialog>
      )}
    </>
  );
}

/** Name a new user; then show their first API token, once. */
function CreateUserDialog({ onClose }: { onClose: () => void }) {
  const [name, setName] = useState('');
  const [email, setEmail] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>();
  const [created, setCreated] = useState<{ name: string; token: string }>();

  if (created) {
    return (
      <Dialog
        title={`${created.name} can sign in`}
        onClose={onClose}
        footer={
          <button type="button" className="button button-primary" onClick={onClose}>
            Done
          </button>
        }
      >
        <p>Give them this API token: they sign in with it, or use it as a bearer token in scripts.</p>
        <SecretValue label={`API token of ${created.name}`} value={created.token} />
      </Dialog>
    );
  }
  const submit = async () => {
    setBusy(true);
    setError(undefined);
    try {
      const result = await users.create(name.trim(), email.trim() || undefined);
      setCreated({ name: result.user.name, token: result.token });
    } catch (failure) {
      setError(failure);
    } finally {
      setBusy(false);
    }
  };
  return (
    <FormDialog
      title="New user"
      onClose={onClose}
      onSubmit={() => void submit()}
      busy={busy}
      submitLabel="Create user"
      busyLabel="Creating…"
      canSubmit={name.trim() !== ''}
    >
      <Field
        label="User name"
        hint="Lowercase letters, digits, dots, dashes and underscores."
        errors={fieldErrors(error, 'name')}
      >
        {(props) => (
          <input
            {...props}
            required
            autoFocus
            spellCheck={false}
            autoComplete="off"
            value={name}
            onChange={(event) => setName(event.target.value)}
          />
        )}
      </Field>
      <Field
        label="E-mail (optional)"
        hint="Invites them to sign in with your identity provider under this verified address."
        errors={fieldErrors(error, 'email')}
      >
        {(props) => (
          <input
            {...props}
            type="email"
            spellCheck={false}
            autoComplete="off"
            value={email}
            onChange={(event) => setEmail(event.target.value)}
          />
        )}
      </Field>
      <ErrorBanner error={error} />
    </FormDialog>
  );
}
