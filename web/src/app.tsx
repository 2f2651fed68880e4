/** The dashboard's shell: which page a path shows, the top bar, and the sign-in gate. */
import type { ReactNode } from 'react';
import { UserMenu } from './components/user-menu';
import { ErrorBanner, Loading } from './components/ui';
import { AdminInfrastructurePage } from './pages/admin/infrastructure';
import { AdminInfrastructuresPage } from './pages/admin/infrastructures';
import { AdminReconciliationPage } from './pages/admin/reconciliation';
import { AdminUsersPage } from './pages/admin/users';
import { CreateGitspacePage } from './pages/create-gitspace';
import { GitspaceDetailPage } from './pages/gitspace-detail';
import { GitspaceListPage } from './pages/gitspace-list';
import { NotFoundPage } from './pages/not-found';
import { OpenGitspacePage } from './pages/open-gitspace';
import { SignInPage } from './pages/sign-in';
import { Link, matchPath, Redirect, useLocation } from './router';
import { useSession } from './session';

interface Route {
  path: string;
  render: (params: Record<string, string>) => ReactNode;
  admin?: boolean;
}

/** Pages that need a session, first match wins (`/gitspaces/new` before `/gitspaces/:id`). */
const ROUTES: Route[] = [
  { path: '/', render: () => <GitspaceListPage /> },
  { path: '/gitspaces/new', render: () => <CreateGitspacePage /> },
  { path: '/gitspaces/:id', render: ({ id = '' }) => <GitspaceDetailPage key={id} gitspaceId={id} /> },
  { path: '/admin/infrastructures', admin: true, render: () => <AdminInfrastructuresPage /> },
  {
    path: '/admin/infrastructures/:id',
    admin: true,
    render: ({ id = '' }) => <AdminInfrastructurePage key={id} infrastructureId={id} />,
  },
  { path: '/admin/users', admin: true, render: () => <AdminUsersPage /> },
  { path: '/admin/reconciliation', admin: true, render: () => <AdminReconciliationPage /> },
];

export function App() {
  const { pathname, href } = useLocation();
  const { state, refresh } = useSession();

  const open = matchPath('/open/:id', pathname);
  if (open?.id) return <OpenGitspacePage gitspaceId={open.id} />;
  if (pathname === '/sign-in') return <SignInPage />;
  if (state.status === 'loading') return <Loading label="Loading Gitspaces…" />;
  if (state.status === 'unavailable') {
    return (
      <main className="centered">
        <ErrorBanner error={state.error} title="Gitspaces is not answering">
          <button type="button" className="button" onClick={() => void refresh()}>
            Try again
          </button>
        </ErrorBanner>
      </main>
    );
  }
  if (state.status === 'signed-out') return <Redirect to={`/sign-in?return_to=${encodeURIComponent(href)}`} />;
  if (pathname === '/admin') return <Redirect to="/admin/infrastructures" />;

  const isAdmin = state.session.user.role === 'admin';
  let page: ReactNode = <NotFoundPage />;
  for (const route of ROUTES) {
    const params = matchPath(route.path, pathname);
    if (!params) continue;
    page = route.admin && !isAdmin ? <NotFoundPage /> : route.render(params);
    break;
  }
  return (
    <>
      <a className="skip-link" href="#main">
        Skip to content
      </a>
      <header className="topbar">
        <Link to="/" className="brand">
          <svg viewBox="0 0 32 32" width="24" height="24" aria-hidden="true">
            <rect width="32" height="32" rx="7" className="brand-mark" />
            <path d="M9 11l6 5-6 5M17 22h7" className="brand-glyph" />
          </svg>
          Gitspaces
        </Link>
        <nav aria-label="Main">
          <NavLink to="/" current={pathname === '/' || pathname.startsWith('/gitspaces')}>
            Gitspaces
          </NavLink>
          {isAdmin && (
            <NavLink to="/admin/infrastructures" current={pathname.startsWith('/admin')}>
              Admin
            </NavLink>
          )}
        </nav>
        <UserMenu />
      </header>
      <main id="main" className="content">
        {page}
      </main>
    </>
  );
}

function NavLink({ to, current, children }: { to: string; current: boolean; children: ReactNode }) {
  return (
    <Link to={to} className="nav-link" aria-current={current ? 'page' : undefined}>
      {children}
    </Link>
  );
}
