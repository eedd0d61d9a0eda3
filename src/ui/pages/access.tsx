/**
 * Access (admins): users (create, delete), robots for CI (create with the secret shown once,
 * expiry, revoke) and the grants of both, through the /api/v1/users and /robots admin API.
 */
import { useState } from 'preact/hooks';
import { ADMIN, api } from '../api.js';
import { ConfirmedButton, CopyField, DataTable, ErrorNote, Loading, Status, submitWith, useAction, useAsync, useConfirm } from '../components.js';
import { age, dateTime } from '../format.js';

interface Grant {
  pattern: string;
  actions: string[];
}

interface User {
  name: string;
  role: 'admin' | 'user';
  createdAt: string;
  grants: Grant[];
}

interface Robot {
  name: string;
  login: string;
  description: string;
  createdBy: string | null;
  createdAt: string;
  expiresAt: string | null;
  status: 'active' | 'expired' | 'revoked';
  grants: Grant[];
}

const admin = { scopes: [ADMIN] };
const ACTIONS = ['pull', 'push', 'delete'];
const accountPath = (kind: 'users' | 'robots', name: string, suffix = '') => `/api/v1/${kind}/${encodeURIComponent(name)}${suffix}`;

function actionsOf(form: FormData): string[] {
  return ACTIONS.filter((action) => form.get(`action-${action}`) === 'on');
}

function ActionBoxes({ legend }: { legend: string }) {
  return (
    <fieldset class="inline-fields">
      <legend>{legend}</legend>
      {ACTIONS.map((action) => (
        <label class="inline">
          <input type="checkbox" name={`action-${action}`} defaultChecked={action === 'pull'} /> {action}
        </label>
      ))}
    </fieldset>
  );
}

/** An account's grants, each removable, and a form adding one. */
function Grants({ kind, name, grants, onChanged }: { kind: 'users' | 'robots'; name: string; grants: Grant[]; onChanged(): void }) {
  const action = useAction();
  const add = submitWith(action, async (form) => {
    await api(accountPath(kind, name, '/grants'), { ...admin, method: 'POST', body: { pattern: String(form.get('pattern')), actions: actionsOf(form) } });
    onChanged();
    return `Grant added to ${name}.`;
  });
  return (
    <div class="grants">
      <ul class="plain">
        {grants.map((grant) => (
          <li>
            <code>{grant.pattern}</code>: {grant.actions.join(', ')}{' '}
            <button
              type="button"
              class="link"
              aria-label={`Remove grant ${grant.pattern} from ${name}`}
              onClick={() =>
                action.run(async () => {
                  await api(accountPath(kind, name, `/grants?${new URLSearchParams({ pattern: grant.pattern })}`), { ...admin, method: 'DELETE' });
                  onChanged();
                  return `Grant ${grant.pattern} removed from ${name}.`;
                })
              }
            >
              remove
            </button>
          </li>
        ))}
      </ul>
      <details>
        <summary>Add a grant</summary>
        <form class="stack" onSubmit={add} aria-label={`Add a grant to ${name}`}>
          <label>
            <span>Repository pattern</span>
            <input name="pattern" required placeholder="team/*" />
          </label>
          <ActionBoxes legend="Actions" />
          <button type="submit">Add grant</button>
        </form>
      </details>
      <Status action={action} />
    </div>
  );
}

function Users() {
  const users = useAsync(() => api<{ users: User[] }>('/api/v1/users', admin), []);
  const action = useAction();
  const [dialog, confirm] = useConfirm();
  const create = submitWith(action, async (form) => {
    const body = { name: String(form.get('name')), password: String(form.get('password')), role: String(form.get('role')) };
    await api('/api/v1/users', { ...admin, method: 'POST', body });
    users.reload();
    return `User ${body.name} created.`;
  });
  return (
    <section aria-labelledby="users-title">
      <h2 id="users-title">Users</h2>
      {dialog}
      <ErrorNote error={users.error} />
      {users.loading && !users.data && <Loading what="users" />}
      {users.data && (
        <DataTable label="Users" columns={['User', 'Role', 'Grants', { label: 'Actions', hidden: true }]}>
          {users.data.users.map((user) => (
            <tr data-user={user.name}>
              <th scope="row">{user.name}</th>
              <td>{user.role}</td>
              <td>{user.role === 'admin' ? <span class="muted">everything</span> : <Grants kind="users" name={user.name} grants={user.grants} onChanged={users.reload} />}</td>
              <td class="row-actions">
                <ConfirmedButton
                  label="Delete"
                  name={`Delete user ${user.name}`}
                  ask={confirm}
                  action={action}
                  question={{ title: `Delete user ${user.name}?`, confirm: 'Delete user', body: <p>Their tokens stop working at once.</p> }}
                  run={async () => {
                    await api(accountPath('users', user.name), { ...admin, method: 'DELETE' });
                    users.reload();
                    return `User ${user.name} deleted.`;
                  }}
                />
              </td>
            </tr>
          ))}
        </DataTable>
      )}
      <details class="panel">
        <summary>New user</summary>
        <form class="stack" onSubmit={create} aria-label="New user">
          <label>
            <span>Name</span>
            <input name="name" required pattern="[a-z0-9][a-z0-9._\-]{0,63}" />
          </label>
          <label>
            <span>Password</span>
            <input name="password" type="password" required autoComplete="new-password" />
          </label>
          <label>
            <span>Role</span>
            <select name="role">
              <option value="user">user</option>
              <option value="admin">admin</option>
            </select>
          </label>
          <button type="submit">Create user</button>
        </form>
      </details>
      <Status action={action} />
    </section>
  );
}

function Robots() {
  const robots = useAsync(() => api<{ robots: Robot[] }>('/api/v1/robots', admin), []);
  const action = useAction();
  const [secret, setSecret] = useState<{ login: string; secret: string } | null>(null);
  const [dialog, confirm] = useConfirm();
  const create = submitWith(action, async (form) => {
    const expiresIn = String(form.get('expiresIn'));
    const body = {
      name: String(form.get('name')),
      description: String(form.get('description')),
      grants: [{ pattern: String(form.get('pattern')), actions: actionsOf(form) }],
      ...(expiresIn ? { expiresIn } : {}),
    };
    const created = await api<Robot & { secret: string }>('/api/v1/robots', { ...admin, method: 'POST', body });
    setSecret({ login: created.login, secret: created.secret });
    robots.reload();
  });
  return (
    <section aria-labelledby="robots-title">
      <h2 id="robots-title">Robots</h2>
      {dialog}
      {secret && (
        <div class="note ok secret" role="status">
          <p>
            Robot <strong>{secret.login}</strong> created. Its secret is shown <strong>only now</strong>: store it in your CI's secrets.
          </p>
          <CopyField label={`Secret of ${secret.login}`} value={secret.secret} />
          <button type="button" onClick={() => setSecret(null)}>
            I have stored it
          </button>
        </div>
      )}
      <ErrorNote error={robots.error} />
      {robots.data && (
        <DataTable label="Robots" columns={['Robot', 'Status', 'Expires', 'Grants', { label: 'Actions', hidden: true }]}>
          {robots.data.robots.map((robot) => (
            <tr data-robot={robot.name}>
              <th scope="row">
                {robot.login}
                {robot.description && <div class="muted">{robot.description}</div>}
              </th>
              <td>
                <span class={`badge state-${robot.status}`}>{robot.status}</span>
              </td>
              <td title={dateTime(robot.expiresAt)}>{robot.expiresAt ? age(robot.expiresAt) : 'never'}</td>
              <td>{robot.status === 'active' ? <Grants kind="robots" name={robot.name} grants={robot.grants} onChanged={robots.reload} /> : robot.grants.map((grant) => grant.pattern).join(', ')}</td>
              <td class="row-actions">
                {robot.status === 'active' && (
                  <ConfirmedButton
                    label="Revoke"
                    name={`Revoke ${robot.login}`}
                    ask={confirm}
                    action={action}
                    question={{ title: `Revoke ${robot.login}?`, confirm: 'Revoke', body: <p>CI jobs using its secret are refused from now on.</p> }}
                    run={async () => {
                      await api(accountPath('robots', robot.name), { ...admin, method: 'DELETE' });
                      robots.reload();
                      return `${robot.login} revoked.`;
                    }}
                  />
                )}
              </td>
            </tr>
          ))}
        </DataTable>
      )}
      <details class="panel">
        <summary>New robot</summary>
        <form class="stack" onSubmit={create} aria-label="New robot">
          <label>
            <span>Name (logs in as robot+name)</span>
            <input name="name" required pattern="[a-z0-9][a-z0-9._\-]{0,63}" />
          </label>
          <label>
            <span>Description</span>
            <input name="description" />
          </label>
          <label>
            <span>Repository pattern</span>
            <input name="pattern" required placeholder="ci/**" />
          </label>
          <ActionBoxes legend="Actions" />
          <label>
            <span>Expires in (90d, 12h or 30m; empty: never)</span>
            <input name="expiresIn" pattern="\d{1,6}[dhm]" />
          </label>
          <button type="submit">Create robot</button>
        </form>
      </details>
      <Status action={action} />
    </section>
  );
}

export function AccessPage() {
  return (
    <section>
      <h1>Access</h1>
      <Users />
      <Robots />
    </section>
  );
}
