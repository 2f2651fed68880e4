/**
 * Short notices ("Stopping 'api'…", "Could not delete: …"), shown at the corner of the page and read out by screen
 * readers through live regions: status politely, errors at once.
 */
import { createContext, useCallback, useContext, useRef, useState, type ReactNode } from 'react';

type Tone = 'info' | 'success' | 'error';

interface Notice {
  id: number;
  tone: Tone;
  message: string;
}

const AnnounceContext = createContext<((message: string, tone?: Tone) => void) | undefined>(undefined);

const SHOWN_MS = { info: 5_000, success: 5_000, error: 12_000 };

export function AnnouncerProvider({ children }: { children: ReactNode }) {
  const [notices, setNotices] = useState<Notice[]>([]);
  const nextId = useRef(1);

  const dismiss = useCallback((id: number) => setNotices((current) => current.filter((n) => n.id !== id)), []);
  const announce = useCallback(
    (message: string, tone: Tone = 'info') => {
      const id = nextId.current++;
      setNotices((current) => [...current.slice(-3), { id, tone, message }]);
      window.setTimeout(() => dismiss(id), SHOWN_MS[tone]);
    },
    [dismiss],
  );

  const list = (tones: Tone[]) =>
    notices
      .filter((notice) => tones.includes(notice.tone))
      .map((notice) => (
        <div key={notice.id} className={`notice notice-${notice.tone}`}>
          <span>{notice.message}</span>
          <button type="button" className="icon-button" aria-label="Dismiss" onClick={() => dismiss(notice.id)}>
            ×
          </button>
        </div>
      ));

  return (
    <AnnounceContext.Provider value={announce}>
      {children}
      <div className="notices">
        <div role="status" aria-live="polite">
          {list(['info', 'success'])}
        </div>
        <div role="alert" aria-live="assertive">
          {list(['error'])}
        </div>
      </div>
    </AnnounceContext.Provider>
  );
}

export function useAnnounce() {
  const announce = useContext(AnnounceContext);
  if (!announce) throw new Error('useAnnounce outside AnnouncerProvider');
  return announce;
}
