/** Sign-in with the registry's own accounts, through its token endpoint. */
import { useState } from 'preact/hooks';
import { useLocation } from 'preact-iso';
import { signIn } from '../api.js';
import { ErrorNote } from '../components.js';

export function SignInPage() {
  const { route, query } = useLocation();
  const [error, setError] = useState<unknown>();
  const [busy, setBusy] = useState(false);
  const submit = async (event: Event) => {
    event.preventDefault();
    const form = new FormData(event.currentTarget as HTMLFormElement);
    setBusy(true);
    setError(undefined);
    try {
      await signIn(String(form.get('username')), String(form.get('password')));
      route(query.next?.startsWith('/ui/') ? query.next : '/ui/');
    } catch (caught) {
      setError(caught);
    } finally {
      setBusy(false);
    }
  };
  return (
    <section class="narrow">
      <h1>Sign in</h1>
      <p class="muted">With a registry account (a robot signs in as robot+name with its secret). Without signing in you see the public repositories.</p>
      <form onSubmit={submit} class="stack">
        <label>
          <span>User name</span>
          <input name="username" autoComplete="username" required autoFocus />
        </label>
        <label>
          <span>Password</span>
          <input name="password" type="password" autoComplete="current-password" required />
        </label>
        <button type="submit" class="primary" disabled={busy}>
          {busy ? 'Signing in…' : 'Sign in'}
        </button>
        <ErrorNote error={error} />
      </form>
    </section>
  );
}
