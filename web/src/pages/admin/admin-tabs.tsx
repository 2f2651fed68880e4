import { Link, useLocation } from '../../router';

const TABS = [
  { to: '/admin/infrastructures', label: 'Infrastructures' },
  { to: '/admin/users', label: 'Users' },
  { to: '/admin/reconciliation', label: 'Reconciliation' },
];

/** The administration sections. */
export function AdminTabs() {
  const { pathname } = useLocation();
  return (
    <nav className="tabs" aria-label="Administration">
      {TABS.map((tab) => (
        <Link key={tab.to} to={tab.to} className="tab" aria-current={pathname.startsWith(tab.to) ? 'page' : undefined}>
          {tab.label}
        </Link>
      ))}
    </nav>
  );
}
