import { useEffect, useId, useRef, useState } from 'react';
import { navigate } from '../router';
import { useSignedIn, useSession } from '../session';
import { useAnnounce } from './announcer';
import { messageOf } from './ui';

/** The signed-in user at the right of the top bar: who, which role, and sign out. */
export function UserMenu() {
  const { user } = useSignedIn();
  const { signOut } = useSession();
  const announce = useAnnounce();
  const [open, setOpen] = useState(false);
  const menuId = useId();
  const root = useRef<HTMLDivElement>(null);
  const button = useRef<HTMLButtonElement>(null);

  useEffect(() => {
    if (!open) return;
    const closeOutside = (event: PointerEvent) => {
      if (!root.current?.contains(event.target as Node)) setOpen(false);
    };
    const closeOnEscape = (event: KeyboardEvent) => {
      if (event.key !== 'Escape') return;
      setOpen(false);
      button.current?.focus();
    };
    document.addEventListener('pointerdown', closeOutside);
    document.addEventListener('keydown', closeOnEscape);
    return () => {
      document.removeEventListener('pointerdown', closeOutside);
      document.removeEventListener('keydown', closeOnEscape);
    };
  }, [open]);

  const leave = () => {
    signOut().then(
      () => navigate('/sign-in', { replace: true }),
      (error: unknown) => announce(`Could not sign out: ${messageOf(error)}`, 'error'),
    );
  };

  return (
    <div className="user-menu" ref={root}>
      <button
        ref={button}
        type="button"
        className="user-button"
        aria-expanded={open}
        aria-controls={menuId}
        onClick={() => setOpen(!open)}
      >
        <span className="avatar" aria-hidden="true">
          {user.name.slice(0, 1).toUpperCase()}
        </span>
        <span className="user-name">{user.name}</span>
        <span className="visually-hidden">, account menu</span>
      </button>
      {open && (
        <div className="user-popover" id={menuId}>
          <p>
            Signed in as <strong>{user.name}</strong>
            <br />
            <span className="muted">{user.role === 'admin' ? 'Administrator' : 'Member'}</span>
          </p>
          <button type="button" className="button button-block" onClick={leave}>
            Sign out
          </button>
        </div>
      )}
    </div>
  );
}
