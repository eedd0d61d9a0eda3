/**
 * The built-in token endpoint: `GET /auth/token` (token.md: HTTP Basic or anonymous, repeated
 * `scope`, `offline_token`) and `POST /auth/token` (oauth.md: `grant_type=password` or
 * `refresh_token`, one space-separated `scope`, `access_type=offline`). The token carries the
 * intersection of what was asked and what the account may do; asking for more is no error.
 */
import express, { type Request, type Response, type Router } from 'express';
import { basicChallenge } from '../../auth/challenge.js';
import { ANONYMOUS, subjectOf, type Principal } from '../../auth/principals.js';
import { formatScope, parseScopes, ScopeError, type ResourceScope } from '../../auth/scopes.js';
import { LoginFailed, LoginThrottled, type AuthService } from '../../auth/service.js';
import { RegistryError } from '../../registry/errors.js';
import { authorization, basicCredentials, clientAddress, throttledError, type RealmResolver } from '../credentials.js';

const TOKEN_PATH = '/auth/token';

export function registerTokenRoutes(router: Router, auth: AuthService, realm: RealmResolver): void {
  const invalidCredentials = (req: Request) =>
    new RegistryError('UNAUTHORIZED', 'invalid username, password or token', undefined, {
      headers: { 'WWW-Authenticate': basicChallenge(realm(req)) },
    });

  /** Runs a credential check, turning its failures into 401 / 429. */
  const authenticated = async (req: Request, check: () => Promise<Principal>): Promise<Principal> => {
    try {
      return await check();
    } catch (error) {
      if (error instanceof LoginThrottled) throw throttledError(error);
      if (error instanceof LoginFailed) throw invalidCredentials(req);
      throw error;
    }
  };

  router.get(TOKEN_PATH, async (req, res) => {
    checkService(auth, single(req.query.service, 'service'));
    const requested = scopesOf(list(req.query.scope));
    const header = authorization(req);
    let principal: Principal = ANONYMOUS;
    if (header) {
      const credentials = header.scheme === 'basic' ? basicCredentials(header.credentials) : null;
      if (!credentials) throw invalidCredentials(req);
      principal = await authenticated(req, () => auth.login(credentials.username, credentials.password, clientAddress(req)));
    }
    const offline = single(req.query.offline_token, 'offline_token') === 'true';
    await respond(res, auth, principal, requested, offline ? 'new' : 'none');
  });

  router.post(TOKEN_PATH, express.urlencoded({ extended: false, limit: '16kb', parameterLimit: 50 }), async (req, res) => {
    const form = (req.body ?? {}) as Record<string, unknown>;
    checkService(auth, single(form.service, 'service'));
    const requested = scopesOf(list(form.scope));
    const grantType = single(form.grant_type, 'grant_type');
    let principal: Principal;
    let refresh: 'new' | 'none' | { existing: string } = 'none';
    if (grantType === 'password') {
      const username = single(form.username, 'username');
      const password = single(form.password, 'password');
      if (!username || password === undefined) throw new RegistryError('INVALID_REQUEST', 'grant_type=password needs username and password');
      principal = await authenticated(req, () => auth.login(username, password, clientAddress(req)));
      if (single(form.access_type, 'access_type') === 'offline') refresh = 'new';
    } else if (grantType === 'refresh_token') {
      const token = single(form.refresh_token, 'refresh_token');
      if (!token) throw new RegistryError('INVALID_REQUEST', 'grant_type=refresh_token needs refresh_token');
      principal = await authenticated(req, () => auth.redeemRefreshToken(token, clientAddress(req)));
      // oauth.md: a refresh grant returns the same refresh token, not a new one.
      refresh = { existing: token };
    } else {
      throw new RegistryError('INVALID_REQUEST', `unsupported grant_type ${JSON.stringify(grantType ?? '')}: use password or refresh_token`);
    }
    await respond(res, auth, principal, requested, refresh, true);
  });
}

async function respond(
  res: Response,
  auth: AuthService,
  principal: Principal,
  requested: ResourceScope[],
  refresh: 'new' | 'none' | { existing: string },
  oauth = false,
): Promise<void> {
  const access = await auth.grantedAccess(principal, requested);
  const issued = auth.tokens.issue(subjectOf(principal), access, principal.instance);
  const body: Record<string, unknown> = {
    token: issued.token,
    access_token: issued.token,
    expires_in: issued.expiresIn,
    issued_at: issued.issuedAt,
  };
  if (oauth) body.scope = access.map(formatScope).join(' ');
  if (principal.kind !== 'anonymous') {
    if (refresh === 'new') body.refresh_token = await auth.issueRefreshToken(principal);
    else if (refresh !== 'none') body.refresh_token = refresh.existing;
  }
  res.set({ 'Cache-Control': 'no-store', Pragma: 'no-cache' }).json(body);
}

function checkService(auth: AuthService, service: string | undefined): void {
  if (service !== undefined && service !== auth.service) {
    throw new RegistryError('INVALID_REQUEST', `this token service issues tokens for ${JSON.stringify(auth.service)}, not ${JSON.stringify(service)}`);
  }
}

function scopesOf(values: string[]): ResourceScope[] {
  try {
    return parseScopes(values);
  } catch (error) {
    if (error instanceof ScopeError) throw new RegistryError('INVALID_REQUEST', error.message);
    throw error;
  }
}

/** A parameter given at most once. */
function single(value: unknown, name: string): string | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'string') throw new RegistryError('INVALID_REQUEST', `parameter ${name} must be given once`);
  return value;
}

/** A parameter that may repeat (`scope` on GET). */
function list(value: unknown): string[] {
  if (value === undefined) return [];
  const values = Array.isArray(value) ? value : [value];
  if (!values.every((entry): entry is string => typeof entry === 'string')) throw new RegistryError('INVALID_REQUEST', 'malformed scope parameter');
  return values;
}
