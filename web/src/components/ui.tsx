/** The small building blocks every page uses: labelled fields, state badges, errors, times. */
import { useEffect, useId, useRef, useState, type ReactNode } from 'react';
import type { GitspaceState } from '../../../contracts/lifecycle';
import { ApiError } from '../data/client';

const STATE_LABELS: Record<GitspaceState, string> = {
  stopped: 'Stopped',
  starting: 'Starting',
  running: 'Running',
  stopping: 'Stopping',
  deleting: 'Deleting',
  deleted: 'Deleted',
  error: 'Error',
};

/** The state in words and colour (the words carry it; the colour helps); a pulse while it changes. */
export function StateBadge({ state }: { state: GitspaceState }) {
  return (
    <span className={`badge badge-${state}`}>
      <span className="badge-dot" aria-hidden="true" />
      {STATE_LABELS[state]}
    </span>
  );
}

/** A failed request, as the API explained it. */
export function ErrorBanner({ error, title, children }: { error: unknown; title?: string; children?: ReactNode }) {
  if (!error) return null;
  return (
    <div className="banner banner-error" role="alert" tabIndex={-1}>
      {title && <strong>{title}</strong>}
      <p>{messageOf(error)}</p>
      {children}
    </div>
  );
}

export function messageOf(error: unknown): string {
  if (error instanceof ApiError || error instanceof Error) return error.message;
  return String(error);
}

export function Loading({ label = 'Loading…' }: { label?: string }) {
  return (
    <p className="loading" role="status">
      <span className="spinner" aria-hidden="true" />
      {label}
    </p>
  );
}

const relative = new Intl.RelativeTimeFormat(undefined, { numeric: 'auto' });
const absolute = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'medium' });

/** "3 minutes ago" ticking once a minute, with the exact time on hover and for screen readers. */
export function RelativeTime({ iso }: { iso: string }) {
  const now = useNow(60_000);
  const date = new Date(iso);
  const seconds = Math.round((date.getTime() - now) / 1000);
  const [value, unit] =
    Math.abs(seconds) < 60
      ? [0, 'second' as const]
      : Math.abs(seconds) < 3600
        ? [Math.round(seconds / 60), 'minute' as const]
        : Math.abs(seconds) < 86_400
          ? [Math.round(seconds / 3600), 'hour' as const]
          : [Math.round(seconds / 86_400), 'day' as const];
  return (
    <time dateTime={iso} title={absolute.format(date)}>
      {value === 0 && unit === 'second' ? 'just now' : relative.format(value, unit)}
    </time>
  );
}

/** The time now, renewed every `everyMs`. */
export function useNow(everyMs: number): number {
  const [now, setNow] = useState(() => Date.now());
  useEffect(() => {
    const timer = window.setInterval(() => setNow(Date.now()), everyMs);
    return () => window.clearInterval(timer);
  }, [everyMs]);
  return now;
}

/** 75 → "1:15", 3725 → "1:02:05". */
export function formatDuration(totalSeconds: number): string {
  const seconds = Math.max(0, Math.floor(totalSeconds));
  const [h, m, s] = [Math.floor(seconds / 3600), Math.floor((seconds % 3600) / 60), seconds % 60];
  const pad = (n: number) => String(n).padStart(2, '0');
  return h > 0 ? `${h}:${pad(m)}:${pad(s)}` : `${m}:${pad(s)}`;
}

export interface ControlProps {
  id: string;
  'aria-describedby'?: string;
  'aria-invalid'?: true;
}

/**
 * A label, the control (rendered by `children` with the ids that tie them together), a hint and the API's problems
 * with this field, announced with the control.
 */
export function Field({
  label,
  hint,
  errors = [],
  children,
}: {
  label: ReactNode;
  hint?: ReactNode;
  errors?: string[];
  children: (props: ControlProps) => ReactNode;
}) {
  const id = useId();
  const hintId = `${id}-hint`;
  const errorId = `${id}-error`;
  const describedBy = [hint ? hintId : '', errors.length ? errorId : ''].filter(Boolean).join(' ');
  return (
    <div className={errors.length ? 'field field-invalid' : 'field'}>
      <label htmlFor={id}>{label}</label>
      {children({
        id,
        ...(describedBy ? { 'aria-describedby': describedBy } : {}),
        ...(errors.length ? { 'aria-invalid': true as const } : {}),
      })}
      {hint && (
        <p className="hint" id={hintId}>
          {hint}
        </p>
      )}
      {errors.length > 0 && (
        <ul className="field-errors" id={errorId}>
          {errors.map((error) => (
            <li key={error}>{error}</li>
          ))}
        </ul>
      )}
    </div>
  );
}

/**
 * After a refused submit, focus goes to the first field the API found a problem with (or the form's error), so a
 * keyboard or screen-reader user lands on what to fix. Returns the ref for the form.
 */
export function useFocusOnProblem(error: unknown) {
  const form = useRef<HTMLFormElement>(null);
  useEffect(() => {
    if (!error) return;
    form.current?.querySelector<HTMLElement>('[aria-invalid="true"], [role="alert"]')?.focus();
  }, [error]);
  return form;
}

/** A secret shown once: selectable, with a copy button. */
export function SecretValue({ label, value }: { label: string; value: string }) {
  const [copied, setCopied] = useState(false);
  const copy = () => {
    navigator.clipboard.writeText(value).then(
      () => setCopied(true),
      () => setCopied(false),
    );
  };
  return (
    <Field label={label} hint="Copy it now: it is shown only once and stored only as a hash.">
      {(props) => (
        <div className="secret">
          <input {...props} readOnly value={value} className="mono" onFocus={(e) => e.currentTarget.select()} />
          <button type="button" className="button" onClick={copy}>
            {copied ? 'Copied' : 'Copy'}
          </button>
        </div>
      )}
    </Field>
  );
}

/** A table's column headers; `actions` adds a last column for the row's buttons, named for screen readers only. */
export function TableHead({ columns, actions }: { columns: string[]; actions?: boolean }) {
  return (
    <thead>
      <tr>
        {columns.map((column) => (
          <th scope="col" key={column}>
            {column}
          </th>
        ))}
        {actions && (
          <th scope="col">
            <span className="visually-hidden">Actions</span>
          </th>
        )}
      </tr>
    </thead>
  );
}
