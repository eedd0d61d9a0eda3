/** The web interface: the page frame (navigation, account) and the routes under /ui/. */
import { render } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { LocationProvider, Route, Router, useLocation } from 'preact-iso';
import { authMode, isAdmin, onSessionChange, session, signOut, type AuthMode } from './api.js';
import { AccessPage } from './pages/access.js';
import { ImagePage } from './pages/image.js';
import { ReleasesPage } from './pages/releases.js';
import { RepositoriesPage } from './pages/repositories.js';
import { RepositoryPage } from './pages/repository.js';
import { SignInPage } from './pages/sign-in.js';
import { StoragePage } from './pages/storage.js';
import { WebhooksPage } from './pages/webhooks.js';
import './styles.css';

/** Re-renders on sign-in and sign-out; knows whether the registry asks for tokens at all. */
export function useAccount(): { mode: AuthMode | undefined; username: string | null; admin: boolean } {
  const [, setVersion] = useState(0);
  const [mode, setMode] = useState<AuthMode>();
  useEffect(() => onSessionChange(() => setVersion((n) => n + 1)), []);
  useEffect(() => {
    void authMode().then(setMode);
  }, []);
  return { mode, username: session()?.username ?? null, admin: isAdmin(mode) };
}

function NavLink({ href, children }: { href: string; children: string }) {
  const { path } = useLocation();
  const current = path === href || (href !== '/ui/' && path.startsWith(href));
  return (
    <a href={href} aria-current={current ? 'page' : undefined}>
      {children}
    </a>
  );
}

function Frame() {
  const account = useAccount();
  const { route } = useLocation();
  return (
    <>
      <a class="skip" href="#main">
        Skip to content
      </a>
      <header class="top">
        <a class="brand" href="/ui/">
          Harbormaster
        </a>
        <nav aria-label="Main">
          <NavLink href="/ui/">Repositories</NavLink>
          {account.admin && <NavLink href="/ui/webhooks">Webhooks</NavLink>}
          {account.admin && <NavLink href="/ui/access">Access</NavLink>}
          {account.admin && <NavLink href="/ui/storage">Storage</NavLink>}
        </nav>
        <div class="account">
          {account.mode === 'open' && <span class="muted">Open registry (no sign-in)</span>}
          {account.mode === 'token' && account.username && (
            <>
              <span>
                Signed in as <strong>{account.username}</strong>
              </span>
              <button
                type="button"
                onClick={() => {
                  signOut();
                  route('/ui/');
                }}
              >
                Sign out
              </button>
            </>
          )}
          {account.mode === 'token' && !account.username && <a href="/ui/sign-in">Sign in</a>}
        </div>
      </header>
      <main id="main" tabIndex={-1}>
        <Router>
          <Route path="/ui/" component={RepositoriesPage} />
          <Route path="/ui/sign-in" component={SignInPage} />
          <Route path="/ui/repository" component={RepositoryPage} />
          <Route path="/ui/image" component={ImagePage} />
          <Route path="/ui/releases" component={ReleasesPage} />
          <Route path="/ui/webhooks" component={AdminWebhooksPage} />
          <Route path="/ui/access" component={AdminAccessPage} />
          <Route path="/ui/storage" component={AdminStoragePage} />
          <Route default component={NotFound} />
        </Router>
      </main>
    </>
  );
}

/**
 * Admin pages are offered to admins only; anyone else is told so, and nothing is fetched. It
 * reads the account itself: the router does not re-render a matched route when the frame does.
 */
function AdminOnly({ page: Page }: { page: () => preact.JSX.Element }) {
  const { mode, admin } = useAccount();
  if (mode === undefined) return null;
  if (admin) return <Page />;
  return (
    <section>
      <h1>Admins only</h1>
      <p>
        This page is for registry admins. {session() ? 'Your account is not an admin.' : <a href="/ui/sign-in">Sign in as an admin.</a>}
      </p>
    </section>
  );
}

const AdminWebhooksPage = () => <AdminOnly page={WebhooksPage} />;
const AdminAccessPage = () => <AdminOnly page={AccessPage} />;
const AdminStoragePage = () => <AdminOnly page={StoragePage} />;

function NotFound() {
  return (
    <section>
      <h1>Not found</h1>
      <p>
        No such page. <a href="/ui/">Repositories</a>
      </p>
    </section>
  );
}

render(
  <LocationProvider scope="/ui">
    <Frame />
  </LocationProvider>,
  document.getElementById('app')!,
);
