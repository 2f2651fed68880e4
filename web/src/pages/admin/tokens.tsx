import { useState } from 'react';
import { useAnnounce } from '../../components/announcer';
import { Dialog } from '../../components/dialog';
import { ErrorBanner, Loading, messageOf, RelativeTime, SecretValue, TableHead } from '../../components/ui';
import { useUserTokens } from '../../data/hooks';
import { users } from '../../data/requests';
import type { ApiToken, User } from '../../data/types';

/**
 * A user's API tokens: list, create (shown once) and revoke. Rotating is creating a new token, moving the scripts to
 * it, then revoking the old one.
 */
export function TokensDialog({ user, onClose }: { user: User; onClose: () => void }) {
  const tokens = useUserTokens(user.id);
  const announce = useAnnounce();
  const [created, setCreated] = useState<string>();
  const [busy, setBusy] = useState<string>();
  const [error, setError] = useState<unknown>();
  const [confirmRevoke, setConfirmRevoke] = useState<string>();

  const create = () => {
    setBusy('create');
    setError(undefined);
    users
      .createToken(user.id)
      .then(
        (result) => {
          setCreated(result.token);
          tokens.reload();
        },
        (failure: unknown) => setError(failure),
      )
      .finally(() => setBusy(undefined));
  };
  const revoke = (token: ApiToken) => {
    setBusy(token.id);
    users
      .revokeToken(user.id, token.id)
      .then(
        () => {
          announce(`Token ${token.name ?? token.id} of '${user.name}' revoked.`, 'success');
          setConfirmRevoke(undefined);
          tokens.reload();
        },
        (failure: unknown) => announce(`Could not revoke the token: ${messageOf(failure)}`, 'error'),
      )
      .finally(() => setBusy(undefined));
  };

  const items = tokens.data?.items ?? [];
  return (
    <Dialog
      title={`API tokens of ${user.name}`}
      onClose={onClose}
      wide
      footer={
        <>
          <button type="button" className="button" onClick={create} disabled={busy === 'create'}>
            {busy === 'create' ? 'Creating…' : 'Create a new token'}
          </button>
          <button type="button" className="button button-primary" onClick={onClose}>
            Done
          </button>
        </>
      }
    >
      <p className="muted small">
        To rotate a token, create a new one, move scripts to it, then revoke the old one. A revoked token stops working
        at once.
      </p>
      {created && <SecretValue label="New API token" value={created} />}
      <ErrorBanner error={error ?? tokens.error} />
      {tokens.loading && !tokens.data && <Loading label="Loading tokens…" />}
      {tokens.data && items.length === 0 && (
        <p className="empty">No tokens: this user can sign in only through the identity provider.</p>
      )}
      {items.length > 0 && (
        <div className="table-wrap">
          <table>
            <TableHead columns={['Token', 'Created', 'Last used']} actions />
            <tbody>
              {items.map((token) => (
                <tr key={token.id}>
                  <th scope="row" className="mono">
                    {token.name ?? token.id}
                  </th>
                  <td>
                    <RelativeTime iso={token.createdAt} />
                  </td>
                  <td>{token.lastUsedAt ? <RelativeTime iso={token.lastUsedAt} /> : 'never'}</td>
                  <td className="row-actions">
                    {confirmRevoke === token.id ? (
                      <>
                        <button
                          type="button"
                          className="button button-small button-danger"
                          disabled={busy === token.id}
                          onClick={() => revoke(token)}
                        >
                          Revoke now
                        </button>
                        <button
                          type="button"
                          className="button button-small"
                          onClick={() => setConfirmRevoke(undefined)}
                        >
                          Keep
                        </button>
                      </>
                    ) : (
                      <button
                        type="button"
                        className="button button-small button-danger-quiet"
                        aria-label={`Revoke token ${token.name ?? token.id}`}
                        onClick={() => setConfirmRevoke(token.id)}
                      >
                        Revoke
                      </button>
                    )}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </Dialog>
  );
}
