import { useEffect, useRef, useState, type FormEvent } from 'react';
import { IDE_KINDS, type IdeKind } from '../../../contracts/provider';
import { PageHeader } from '../components/page';
import { ErrorBanner, Field, Loading, useFocusOnProblem } from '../components/ui';
import { fieldErrors } from '../data/client';
import { useInfrastructures, useMachines } from '../data/hooks';
import { gitspaces, type NewGitspace } from '../data/requests';
import type { Machine } from '../data/types';
import { navigate } from '../router';
import { IDE_LABELS } from './labels';

type Access = 'none' | 'token' | 'tokenRef';

const IDE_HINTS: Record<IdeKind, string> = {
  'vscode-web': 'The full editor in a browser tab.',
  terminal: 'A shell in a browser tab.',
  ssh: 'Connect from your own editor or terminal.',
};

/** The repository's last path segment without `.git`, as a name suggestion (`…/org/api.git` → `api`). */
function nameFromRepository(url: string): string {
  const last = url.replace(/\/+$/, '').split('/').pop() ?? '';
  return last
    .replace(/\.git$/, '')
    .replace(/[^A-Za-z0-9 ._-]/g, '-')
    .replace(/^[^A-Za-z0-9]+/, '')
    .slice(0, 63);
}

/** A key for Idempotency-Key; getRandomValues works on plain http too, where randomUUID does not. */
function randomKey(): string {
  return Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) => b.toString(16).padStart(2, '0')).join('');
}

export function machineLabel(machine: Machine): string {
  const place = machine.zone ?? machine.region;
  return `${machine.name} — ${machine.machineType}, ${machine.diskSizeGb} GB disk${place ? `, ${place}` : ''}`;
}

/** Create a gitspace: a repository, where it runs, which IDE; the API's problems shown at each field. */
export function CreateGitspacePage() {
  const infrastructures = useInfrastructures();
  const [url, setUrl] = useState('');
  const [branch, setBranch] = useState('');
  const [name, setName] = useState('');
  const [nameEdited, setNameEdited] = useState(false);
  const [access, setAccess] = useState<Access>('none');
  const [token, setToken] = useState('');
  const [tokenRef, setTokenRef] = useState('');
  const [infrastructureId, setInfrastructureId] = useState('');
  const [machineId, setMachineId] = useState('');
  const [ide, setIde] = useState<IdeKind>('terminal');
  const [start, setStart] = useState(true);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>();
  const machines = useMachines(infrastructureId || undefined);
  const form = useFocusOnProblem(error);
  const lastRequest = useRef<{ body: string; key: string } | undefined>(undefined);

  // Choose for the user when there is only one choice (the embedded default has one infrastructure and machine).
  useEffect(() => {
    const [only, ...others] = infrastructures.data?.items ?? [];
    if (only && others.length === 0 && !infrastructureId) setInfrastructureId(only.id);
  }, [infrastructures.data, infrastructureId]);
  useEffect(() => {
    const items = machines.data?.items ?? [];
    if (!items.some((machine) => machine.id === machineId))
      setMachineId(items.length === 1 ? (items[0]?.id ?? '') : '');
  }, [machines.data, machineId]);

  const submit = async (event: FormEvent) => {
    event.preventDefault();
    const body: NewGitspace = {
      name: name.trim(),
      repository: {
        url: url.trim(),
        ...(branch.trim() ? { branch: branch.trim() } : {}),
        ...(access === 'token' && token ? { token } : {}),
        ...(access === 'tokenRef' && tokenRef.trim() ? { tokenRef: tokenRef.trim() } : {}),
      },
      infrastructureId,
      machineId,
      ide,
      start,
    };
    // The same key for the same request: a retry after a lost answer creates nothing twice.
    const json = JSON.stringify(body);
    if (lastRequest.current?.body !== json) lastRequest.current = { body: json, key: randomKey() };
    setBusy(true);
    setError(undefined);
    try {
      const created = await gitspaces.create(body, lastRequest.current.key);
      navigate(`/gitspaces/${encodeURIComponent(created.gitspace.id)}`);
    } catch (failure) {
      setError(failure);
      setBusy(false);
    }
  };

  const infrastructureItems = infrastructures.data?.items ?? [];
  return (
    <>
      <PageHeader title="New gitspace" back={{ to: '/', label: 'Gitspaces' }} />
      <form ref={form} className="card form" onSubmit={(event) => void submit(event)} noValidate>
        <section className="form-section">
          <h2>Repository</h2>
          <Field
            label="Repository URL"
            hint="https://, ssh:// or git://; for git@host:org/repo write ssh://git@host/org/repo."
            errors={fieldErrors(error, 'repository.url')}
          >
            {(props) => (
              <input
                {...props}
                type="url"
                inputMode="url"
                required
                spellCheck={false}
                placeholder="https://git.example.com/org/repo.git"
                value={url}
                onChange={(event) => {
                  setUrl(event.target.value);
                  if (!nameEdited) setName(nameFromRepository(event.target.value));
                }}
              />
            )}
          </Field>
          <Field
            label="Branch (optional)"
            hint="Empty for the repository’s default branch."
            errors={fieldErrors(error, 'repository.branch')}
          >
            {(props) => (
              <input
                {...props}
                spellCheck={false}
                placeholder="main"
                value={branch}
                onChange={(event) => setBranch(event.target.value)}
              />
            )}
          </Field>
          <fieldset className="choices">
            <legend>Access to the repository</legend>
            {(
              [
                ['none', 'Public, or no credentials needed'],
                ['token', 'An access token'],
                ['tokenRef', 'A token in the runner’s secret store'],
              ] as const
            ).map(([value, label]) => (
              <label key={value} className="choice">
                <input
                  type="radio"
                  name="access"
                  value={value}
                  checked={access === value}
                  onChange={() => setAccess(value)}
                />
                {label}
              </label>
            ))}
          </fieldset>
          {access === 'token' && (
            <Field
              label="Access token"
              hint="Sealed to the infrastructure’s runners: the control plane stores only ciphertext and never shows it again."
              errors={fieldErrors(error, 'repository.token')}
            >
              {(props) => (
                <input
                  {...props}
                  type="password"
                  autoComplete="off"
                  spellCheck={false}
                  value={token}
                  onChange={(event) => setToken(event.target.value)}
                />
              )}
            </Field>
          )}
          {access === 'tokenRef' && (
            <Field
              label="Secret name"
              hint="A name in your own scope (github) or the shared one (shared/deploy); the token never passes through the control plane."
              errors={fieldErrors(error, 'repository.tokenRef')}
            >
              {(props) => (
                <input
                  {...props}
                  spellCheck={false}
                  placeholder="github"
                  value={tokenRef}
                  onChange={(event) => setTokenRef(event.target.value)}
                />
              )}
            </Field>
          )}
        </section>

        <section className="form-section">
          <h2>Machine</h2>
          <ErrorBanner error={infrastructures.error} title="Could not load the infrastructures" />
          {infrastructures.loading && <Loading label="Loading infrastructures…" />}
          <div className="field-row">
            <Field label="Infrastructure" errors={fieldErrors(error, 'infrastructureId')}>
              {(props) => (
                <select
                  {...props}
                  required
                  value={infrastructureId}
                  onChange={(event) => setInfrastructureId(event.target.value)}
                >
                  <option value="">Choose an infrastructure</option>
                  {infrastructureItems.map((infrastructure) => (
                    <option key={infrastructure.id} value={infrastructure.id}>
                      {infrastructure.name} ({infrastructure.provider})
                    </option>
                  ))}
                </select>
              )}
            </Field>
            <Field
              label="Machine"
              errors={[...fieldErrors(error, 'machineId'), ...(machines.error ? ['Could not load the machines.'] : [])]}
              hint={
                infrastructureId && machines.data?.items.length === 0
                  ? 'This infrastructure has no machines yet; an administrator adds them.'
                  : undefined
              }
            >
              {(props) => (
                <select
                  {...props}
                  required
                  disabled={!infrastructureId}
                  value={machineId}
                  onChange={(event) => setMachineId(event.target.value)}
                >
                  <option value="">{infrastructureId ? 'Choose a machine' : 'Choose an infrastructure first'}</option>
                  {(machines.data?.items ?? []).map((machine) => (
                    <option key={machine.id} value={machine.id}>
                      {machineLabel(machine)}
                    </option>
                  ))}
                </select>
              )}
            </Field>
          </div>
        </section>

        <section className="form-section">
          <h2>Editor</h2>
          <fieldset className="choices choices-cards">
            <legend className="visually-hidden">IDE</legend>
            {IDE_KINDS.map((kind) => (
              <label key={kind} className={ide === kind ? 'choice-card choice-card-checked' : 'choice-card'}>
                <input type="radio" name="ide" value={kind} checked={ide === kind} onChange={() => setIde(kind)} />
                <span>
                  <strong>{IDE_LABELS[kind]}</strong>
                  <span className="muted small">{IDE_HINTS[kind]}</span>
                </span>
              </label>
            ))}
          </fieldset>
          {fieldErrors(error, 'ide').map((problem) => (
            <p key={problem} className="error-text">
              {problem}
            </p>
          ))}
        </section>

        <section className="form-section">
          <h2>Name</h2>
          <Field
            label="Gitspace name"
            hint="Letters, digits, spaces, dots, dashes and underscores."
            errors={fieldErrors(error, 'name')}
          >
            {(props) => (
              <input
                {...props}
                required
                maxLength={63}
                value={name}
                onChange={(event) => {
                  setName(event.target.value);
                  setNameEdited(true);
                }}
              />
            )}
          </Field>
          <label className="checkbox">
            <input type="checkbox" checked={start} onChange={(event) => setStart(event.target.checked)} />
            Start it now
          </label>
        </section>

        <ErrorBanner error={error} title="The gitspace was not created" />
        <div className="form-actions">
          <button type="button" className="button" onClick={() => navigate('/')}>
            Cancel
          </button>
          <button type="submit" className="button button-primary" disabled={busy}>
            {busy ? 'Creating…' : start ? 'Create and start' : 'Create'}
          </button>
        </div>
      </form>
    </>
  );
}
