import { useState } from 'react';
import { PROVIDER_NAMES, type ProviderName } from '../../../../contracts/provider';
import { FormDialog } from '../../components/dialog';
import { ErrorBanner, Field } from '../../components/ui';
import { ApiError, fieldErrors } from '../../data/client';
import { infrastructures, type InfrastructureInput } from '../../data/requests';
import type { Infrastructure } from '../../data/types';

/** What a config looks like per provider (README: the providers' settings); the API checks every field. */
const CONFIG_EXAMPLES: Record<ProviderName, Record<string, unknown>> = {
  local: { repositoryNetworks: { allowLoopback: false, allowPrivate: false } },
  gcp: {
    project: 'acme-dev-123',
    region: 'europe-west1',
    zones: ['europe-west1-b'],
    network: 'gitspaces',
    subnetwork: 'gitspaces-europe-west1',
    serviceAccount: 'gitspaces-machines@acme-dev-123.iam.gserviceaccount.com',
  },
  aws: {
    region: 'eu-west-1',
    subnetId: 'subnet-0123456789abcdef0',
    securityGroupIds: ['sg-0123456789abcdef0'],
    amiLookup: { owners: ['136693071363'], namePattern: 'debian-12-amd64-*' },
  },
  // Not offered here (benchmarks only), but an existing one can be edited.
  simulated: { bootSeconds: 2 },
};

const pretty = (value: unknown) => JSON.stringify(value, null, 2);

/** Create an infrastructure, or (given one) edit its gateway URL, config and runner keys. */
export function InfrastructureFormDialog({
  existing,
  onDone,
  onClose,
}: {
  existing?: Infrastructure;
  onDone: (infrastructure: Infrastructure) => void;
  onClose: () => void;
}) {
  const [name, setName] = useState(existing?.name ?? '');
  const [provider, setProvider] = useState<ProviderName>(existing?.provider ?? 'local');
  const [gatewayUrl, setGatewayUrl] = useState(existing?.gatewayUrl ?? '');
  const [config, setConfig] = useState(existing ? pretty(existing.config) : '{}');
  const [keys, setKeys] = useState(existing?.runnerPublicKeys.join('\n') ?? '');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>();

  const submit = async () => {
    let parsedConfig: unknown;
    try {
      parsedConfig = JSON.parse(config || '{}');
    } catch (failure) {
      parsedConfig = failure;
    }
    if (typeof parsedConfig !== 'object' || parsedConfig === null || Array.isArray(parsedConfig)) {
      setError(
        new ApiError(400, 'invalid_json', 'The config is not a JSON object.', [
          {
            path: 'config',
            message: `must be a JSON object${parsedConfig instanceof Error ? `: ${parsedConfig.message}` : ''}`,
          },
        ]),
      );
      return;
    }
    const runnerPublicKeys = keys
      .split(/\s+/)
      .map((key) => key.trim())
      .filter(Boolean);
    const changes = {
      config: parsedConfig as Record<string, unknown>,
      gatewayUrl: gatewayUrl.trim(),
      ...(runnerPublicKeys.length ? { runnerPublicKeys } : {}),
    };
    setBusy(true);
    setError(undefined);
    try {
      const body: InfrastructureInput = { name: name.trim(), provider, ...changes };
      onDone(existing ? await infrastructures.update(existing.id, changes) : await infrastructures.create(body));
    } catch (failure) {
      setError(failure);
      setBusy(false);
    }
  };

  return (
    <FormDialog
      title={existing ? `Edit ${existing.name}` : 'New infrastructure'}
      onClose={onClose}
      wide
      onSubmit={() => void submit()}
      busy={busy}
      submitLabel={existing ? 'Save' : 'Create infrastructure'}
    >
      {!existing && (
        <div className="field-row">
          <Field
            label="Name"
            hint="Lowercase letters, digits and dashes; also its id and task queue."
            errors={fieldErrors(error, 'name')}
          >
            {(props) => (
              <input
                {...props}
                required
                spellCheck={false}
                placeholder="gcp-eu"
                value={name}
                onChange={(e) => setName(e.target.value)}
              />
            )}
          </Field>
          <Field label="Provider" errors={fieldErrors(error, 'provider')}>
            {(props) => (
              <select {...props} value={provider} onChange={(e) => setProvider(e.target.value as ProviderName)}>
                {PROVIDER_NAMES.map((name) => (
                  <option key={name} value={name}>
                    {name}
                  </option>
                ))}
              </select>
            )}
          </Field>
        </div>
      )}
      <Field
        label="Gateway URL"
        hint="Where developers reach this infrastructure’s gateway."
        errors={fieldErrors(error, 'gatewayUrl')}
      >
        {(props) => (
          <input
            {...props}
            type="url"
            required
            spellCheck={false}
            placeholder="https://gitspaces-gw.example.com"
            value={gatewayUrl}
            onChange={(e) => setGatewayUrl(e.target.value)}
          />
        )}
      </Field>
      <Field
        label={`Config (JSON, ${provider} provider)`}
        hint={
          <>
            Checked by the API against the provider’s settings.{' '}
            <button type="button" className="link-button" onClick={() => setConfig(pretty(CONFIG_EXAMPLES[provider]))}>
              Start from an example
            </button>
          </>
        }
        errors={fieldErrors(error, 'config')}
      >
        {(props) => (
          <textarea
            {...props}
            className="mono"
            rows={10}
            spellCheck={false}
            value={config}
            onChange={(e) => setConfig(e.target.value)}
          />
        )}
      </Field>
      <Field
        label="Runner public keys (optional)"
        hint="One per line, as a runner prints it at start (x25519:…). Repository tokens are sealed to the first."
        errors={fieldErrors(error, 'runnerPublicKeys')}
      >
        {(props) => (
          <textarea
            {...props}
            className="mono"
            rows={3}
            spellCheck={false}
            value={keys}
            onChange={(e) => setKeys(e.target.value)}
          />
        )}
      </Field>
      <ErrorBanner error={error} />
    </FormDialog>
  );
}
