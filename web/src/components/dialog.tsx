/**
 * Modal dialogs on the native <dialog>: showModal() makes the rest of the page inert (focus stays inside), Escape
 * closes it, and focus returns to the control that opened it.
 */
import { useEffect, useId, useRef, type FormEvent, type ReactNode } from 'react';
import { ErrorBanner } from './ui';

const FOCUSABLE = 'a[href], button, input, select, textarea, [tabindex]:not([tabindex="-1"])';

export function Dialog({
  title,
  onClose,
  children,
  footer,
  onSubmit,
  wide,
}: {
  title: string;
  onClose: () => void;
  children: ReactNode;
  /** The buttons; inside the form when `onSubmit` is given, so Enter submits. */
  footer: ReactNode;
  onSubmit?: (event: FormEvent<HTMLFormElement>) => void;
  wide?: boolean;
}) {
  const ref = useRef<HTMLDialogElement>(null);
  const titleId = useId();
  const close = useRef(onClose);
  close.current = onClose;

  useEffect(() => {
    const dialog = ref.current;
    if (!dialog) return;
    const opener = document.activeElement instanceof HTMLElement ? document.activeElement : undefined;
    dialog.showModal();
    const cancel = (event: Event) => {
      event.preventDefault();
      close.current();
    };
    // The page behind is inert already; this keeps Tab cycling inside instead of leaving for the browser's own UI.
    const trapTab = (event: KeyboardEvent) => {
      if (event.key !== 'Tab') return;
      const focusable = [...dialog.querySelectorAll<HTMLElement>(FOCUSABLE)].filter(
        (el) => !el.hasAttribute('disabled'),
      );
      const first = focusable[0];
      const last = focusable.at(-1);
      if (event.shiftKey && document.activeElement === first) {
        event.preventDefault();
        last?.focus();
      } else if (!event.shiftKey && document.activeElement === last) {
        event.preventDefault();
        first?.focus();
      }
    };
    dialog.addEventListener('cancel', cancel);
    dialog.addEventListener('keydown', trapTab);
    return () => {
      dialog.removeEventListener('cancel', cancel);
      dialog.removeEventListener('keydown', trapTab);
      dialog.close();
      opener?.focus();
    };
  }, []);

  const body = (
    <>
      <header className="dialog-header">
        <h2 id={titleId}>{title}</h2>
      </header>
      <div className="dialog-body">{children}</div>
      <footer className="dialog-footer">{footer}</footer>
    </>
  );
  return (
    <dialog ref={ref} aria-labelledby={titleId} className={wide ? 'dialog dialog-wide' : 'dialog'}>
      {onSubmit ? (
        <form
          noValidate
          onSubmit={(event) => {
            event.preventDefault();
            onSubmit(event);
          }}
        >
          {body}
        </form>
      ) : (
        body
      )}
    </dialog>
  );
}

/** A dialog holding a form: Cancel, and a submit button that says what it does and, while busy, that it is doing it. */
export function FormDialog({
  submitLabel,
  busyLabel = 'Saving…',
  busy,
  canSubmit = true,
  onSubmit,
  onClose,
  ...rest
}: {
  title: string;
  children: ReactNode;
  submitLabel: string;
  busyLabel?: string;
  busy: boolean;
  canSubmit?: boolean;
  onSubmit: () => void;
  onClose: () => void;
  wide?: boolean;
}) {
  return (
    <Dialog
      {...rest}
      onClose={onClose}
      onSubmit={onSubmit}
      footer={
        <>
          <button type="button" className="button" onClick={onClose}>
            Cancel
          </button>
          <button type="submit" className="button button-primary" disabled={busy || !canSubmit}>
            {busy ? busyLabel : submitLabel}
          </button>
        </>
      }
    />
  );
}

/** "Are you sure?" for what cannot be undone: the dangerous button is not the one focused first. */
export function ConfirmDialog({
  title,
  children,
  confirmLabel,
  busy,
  error,
  onConfirm,
  onClose,
}: {
  title: string;
  children: ReactNode;
  confirmLabel: string;
  busy?: boolean;
  error?: unknown;
  onConfirm: () => void;
  onClose: () => void;
}) {
  return (
    <Dialog
      title={title}
      onClose={onClose}
      footer={
        <>
          <button type="button" className="button" onClick={onClose} autoFocus>
            Cancel
          </button>
          <button type="button" className="button button-danger" onClick={onConfirm} disabled={busy}>
            {busy ? 'Working…' : confirmLabel}
          </button>
        </>
      }
    >
      {children}
      <ErrorBanner error={error} />
    </Dialog>
  );
}
