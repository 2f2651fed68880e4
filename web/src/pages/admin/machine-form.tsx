import { useState } from 'react';
import { FormDialog } from '../../components/dialog';
import { ErrorBanner, Field } from '../../components/ui';
import { fieldErrors } from '../../data/client';
import { infrastructures, type MachineInput } from '../../data/requests';
import type { Machine } from '../../data/types';

/** Add a machine size, or edit one (its name stays). */
export function MachineFormDialog({
  infrastructureId,
  existing,
  onDone,
  onClose,
}: {
  infrastructureId: string;
  existing?: Machine;
  onDone: (machine: Machine) => void;
  onClose: () => void;
}) {
  const [form, setForm] = useState({
    name: existing?.name ?? '',
    machineType: existing?.machineType ?? '',
    diskSizeGb: String(existing?.diskSizeGb ?? 20),
    region: existing?.region ?? '',
    zone: existing?.zone ?? '',
    image: existing?.image ?? '',
    warmPoolSize: String(existing?.warmPoolSize ?? 0),
  });
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>();
  const set = (key: keyof typeof form) => (event: { target: { value: string } }) =>
    setForm((current) => ({ ...current, [key]: event.target.value }));

  const submit = async () => {
    const spec: Omit<MachineInput, 'name'> = {
      machineType: form.machineType.trim(),
      diskSizeGb: Number(form.diskSizeGb),
      ...(form.region.trim() ? { region: form.region.trim() } : {}),
      ...(form.zone.trim() ? { zone: form.zone.trim() } : {}),
      ...(form.image.trim() ? { image: form.image.trim() } : {}),
      // Sent only when changed: a size change makes the control plane bring the pool to it at once.
      ...(Number(form.warmPoolSize) !== (existing?.warmPoolSize ?? 0)
        ? { warmPoolSize: Number(form.warmPoolSize) }
        : {}),
    };
    setBusy(true);
    setError(undefined);
    try {
      onDone(
        existing
          ? await infrastructures.updateMachine(infrastructureId, existing.id, spec)
          : await infrastructures.createMachine(infrastructureId, { name: form.name.trim(), ...spec }),
      );
    } catch (failure) {
      setError(failure);
      setBusy(false);
    }
  };

  const text = (key: Exclude<keyof typeof form, 'diskSizeGb' | 'warmPoolSize'>, label: string, hint?: string) => (
    <Field label={label} hint={hint} errors={fieldErrors(error, key)}>
      {(props) => <input {...props} spellCheck={false} value={form[key]} onChange={set(key)} />}
    </Field>
  );
  return (
    <FormDialog
      title={existing ? `Edit machine ${existing.name}` : 'Add a machine'}
      onClose={onClose}
      onSubmit={() => void submit()}
      busy={busy}
      submitLabel={existing ? 'Save' : 'Add machine'}
    >
      {!existing && text('name', 'Name', 'Lowercase letters, digits and dashes, e.g. standard-4.')}
      {text('machineType', 'Machine type', 'The cloud’s own name: e2-standard-4, t3.large; anything for local.')}
      <Field label="Disk size (GB)" errors={fieldErrors(error, 'diskSizeGb')}>
        {(props) => (
          <input {...props} type="number" min={10} max={65536} value={form.diskSizeGb} onChange={set('diskSizeGb')} />
        )}
      </Field>
      <div className="field-row">
        {text('region', 'Region (optional)')}
        {text('zone', 'Zone (optional)')}
      </div>
      {text('image', 'Image (optional)', 'Overrides the infrastructure’s image; not for local.')}
      <Field
        label="Warm pool"
        hint="Stopped machines of this size kept ready, so a new gitspace boots one instead of waiting for a new machine (aws and simulated). 0: none."
        errors={fieldErrors(error, 'warmPoolSize')}
      >
        {(props) => (
          <input {...props} type="number" min={0} max={50} value={form.warmPoolSize} onChange={set('warmPoolSize')} />
        )}
      </Field>
      <ErrorBanner error={error} />
    </FormDialog>
  );
}
