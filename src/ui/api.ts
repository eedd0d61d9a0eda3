/**
 * The interface's client of the registry's own HTTP APIs. Sign-in is the registry's token
 * flow (docs/auth.md): `POST /auth/token` with `grant_type=password` and `access_type=offline`
 * returns a refresh token, kept in sessionStorage (this tab only, gone when it closes); every
 * request then carries a short-lived Bearer token for exactly the scopes it needs, obtained with
 * `grant_type=refresh_token` (or anonymously with `GET /auth/token`) and cached in memory until
 * it expires. What a token was granted tells the interface which actions to offer; the server
 * checks every request again.
 */

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

export interface Session {
  username: string;
  refreshToken: string;
  /** The account may manage the registry (its token was granted registry:admin:*). */
  admin: boolean;
}

/** How the registry authenticates: `open` (auth.mode none: everything allowed) or `token`. */
export type AuthMode = 'open' | 'token';

interface Token {
  token: string;
  expiresAt: number;
  /** `type:name` → actions granted. */
  granted: Map<string, string[]>;
}

const SESSION_KEY = 'registry-ui-session';
export const CATALOG = 'registry:catalog:*';
export const ADMIN = 'registry:admin:*';

const tokens = new Map<string, Token>();
let listeners: Array<() => void> = [];
let mode: AuthMode | undefined;

export function session(): Session | null {
  const raw = sessionStorage.getItem(SESSION_KEY);
  if (!raw) return null;
  try {
    return JSON.parse(raw) as Session;
  } catch {
    return null;
  }
}

/** Called whenever the signed-in account changes. */
export function onSessionChange(listener: () => void): () => void {
  listeners.push(listener);
  return () => (listeners = listeners.filter((entry) => entry !== listener));
}

function setSession(next: Session | null): void {
  tokens.clear();
  if (next) sessionStorage.setItem(SESSION_KEY, JSON.stringify(next));
  else sessionStorage.removeItem(SESSION_KEY);
  for (const listener of listeners) listener();
}

/** Whether the registry asks for tokens at all: GET /v2/ answers 200 when it is open. */
export async function authMode(): Promise<AuthMode> {
  if (!mode) {
    const res = await fetch('/v2/', { headers: { Accept: 'application/json' } });
    mode = res.status === 401 ? 'token' : 'open';
  }
  return mode;
}

async function errorOf(res: Response): Promise<ApiError> {
  let code = `HTTP_${res.status}`;
  let message = res.statusText || `request failed with status ${res.status}`;
  try {
    const body = (await res.json()) as { errors?: Array<{ code?: string; message?: string }> };
    const first = body.errors?.[0];
    if (first?.code) code = first.code;
    if (first?.message) message = first.message;
  } catch {
    // Not the registry's JSON error body: keep the status text.
  }
  return new ApiError(res.status, code, message);
}

function decodeAccess(token: string): Map<string, string[]> {
  const granted = new Map<string, string[]>();
  try {
    const payload = token.split('.')[1] ?? '';
    const json = JSON.parse(atob(payload.replace(/-/g, '+').replace(/_/g, '/'))) as { access?: Array<{ type: string; name: string; actions: string[] }> };
    for (const entry of json.access ?? []) granted.set(`${entry.type}:${entry.name}`, entry.actions);
  } catch {
    // A token this interface cannot read grants nothing it can show.
  }
  return granted;
}

async function tokenEndpoint(form: Record<string, string> | null, scopes: string[]): Promise<{ token: string; expires_in?: number; refresh_token?: string }> {
  const res = form
    ? await fetch('/auth/token', {
        method: 'POST',
        headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ ...form, scope: scopes.join(' '), client_id: 'registry-ui' }),
      })
    : await fetch(`/auth/token?${new URLSearchParams(scopes.map((scope) => ['scope', scope]))}`);
  if (!res.ok) throw await errorOf(res);
  return (await res.json()) as { token: string; expires_in?: number; refresh_token?: string };
}

/** Signs in with a user's (or robot's) credentials; resolves with the session. */
export async function signIn(username: string, password: string): Promise<Session> {
  const body = await tokenEndpoint({ grant_type: 'password', username, password, access_type: 'offline' }, [CATALOG, ADMIN]);
  if (!body.refresh_token) throw new ApiError(400, 'NO_REFRESH_TOKEN', 'the token service issued no refresh token');
  const granted = decodeAccess(body.token);
  const next: Session = { username, refreshToken: body.refresh_token, admin: (granted.get('registry:admin') ?? []).includes('*') };
  setSession(next);
  return next;
}

export function signOut(): void {
  setSession(null);
}

/** A token for these scopes (cached until shortly before it expires). */
async function tokenFor(scopes: string[]): Promise<Token> {
  const key = [...scopes].sort().join(' ');
  const cached = tokens.get(key);
  if (cached && cached.expiresAt > Date.now() + 10_000) return cached;
  const current = session();
  let body;
  try {
    body = await tokenEndpoint(current ? { grant_type: 'refresh_token', refresh_token: current.refreshToken } : null, scopes);
  } catch (error) {
    // A refresh token that no longer works (password changed, account removed): sign out.
    if (current && error instanceof ApiError && error.status === 401) setSession(null);
    throw error;
  }
  const token: Token = { token: body.token, expiresAt: Date.now() + (body.expires_in ?? 60) * 1000, granted: decodeAccess(body.token) };
  tokens.set(key, token);
  return token;
}

/** The actions the signed-in (or anonymous) caller holds on a repository, among those asked. */
export async function repositoryActions(repository: string, actions: string[]): Promise<Set<string>> {
  if ((await authMode()) === 'open') return new Set(actions);
  const token = await tokenFor([`repository:${repository}:${actions.join(',')}`]);
  return new Set(token.granted.get(`repository:${repository}`) ?? []);
}

/** Whether the caller may use the admin pages. */
export function isAdmin(currentMode: AuthMode | undefined): boolean {
  return currentMode === 'open' || session()?.admin === true;
}

export interface RequestOptions {
  /** Token scopes the request needs (none in an open registry). */
  scopes: string[];
  method?: string;
  body?: unknown;
  accept?: string;
}

/** Sends a request with a token for `scopes`; resolves with the parsed JSON (null for an empty body). */
export async function api<T>(path: string, options: RequestOptions): Promise<T> {
  const headers: Record<string, string> = { Accept: options.accept ?? 'application/json' };
  if ((await authMode()) === 'token') headers.Authorization = `Bearer ${(await tokenFor(options.scopes)).token}`;
  if (options.body !== undefined) headers['Content-Type'] = 'application/json';
  const res = await fetch(path, { method: options.method ?? 'GET', headers, body: options.body === undefined ? undefined : JSON.stringify(options.body) });
  if (!res.ok) throw await errorOf(res);
  const text = await res.text();
  return (text ? JSON.parse(text) : null) as T;
}

/** `/api/v1/repositories/<name>…`: a repository name's components, each percent-encoded. */
export function repositoryPath(name: string, suffix = ''): string {
  return `/api/v1/repositories/${name.split('/').map(encodeURIComponent).join('/')}${suffix}`;
}

export const pullScope = (repository: string) => `repository:${repository}:pull`;
