/**
 * HTTP authentication: the `/v2` middleware (works out the scope a request needs, verifies a
 * Bearer token or a user's or robot's Basic credentials, sets `res.locals.caller`, or answers with the
 * spec's challenge), `requireAdmin` for the admin APIs, and the auth routes (/auth/token,
 * /api/v1/users, /api/v1/robots) bundled for createApp.
 */
import express, { type Request, type RequestHandler, type Router } from 'express';
import { accessDetail, basicChallenge, bearerChallenge } from '../auth/challenge.js';
import { actorOf, ANONYMOUS, type Principal } from '../auth/principals.js';
import { accessAllows, ADMIN_SCOPE } from '../auth/scopes.js';
import { LoginFailed, LoginThrottled, type AuthService } from '../auth/service.js';
import { TokenError, type VerifiedToken } from '../auth/tokens.js';
import { RegistryError } from '../registry/errors.js';
import { UNRESTRICTED_ACCESS, type RepositoryAccess } from '../registry/ports.js';
import { registerAccountRoutes } from './routes/admin-accounts.js';
import { registerTokenRoutes } from './routes/token.js';
import { authorization, basicCredentials, clientAddress, throttledError, type RealmResolver } from './credentials.js';
import { requiredAccess, type RequiredAccess } from './required-access.js';
import type { CallerContext } from './wire.js';

/** What createApp needs from auth: the /v2 guard, the admin guard, the reader guard, and auth's own routes. */
export interface HttpAuth {
  authenticate: RequestHandler;
  /** The /v2 guard for other read APIs: the same tokens and checks, for the access `required` names. */
  authenticateFor(required: (req: Request) => RequiredAccess): RequestHandler;
  requireAdmin: RequestHandler;
  requireReader: RequestHandler;
  routes: Router;
}

export interface HttpAuthOptions {
  /** `http.publicUrl`: the base of the token realm when `auth.realm` is not set. */
  publicUrl?: string;
}

export function createHttpAuth(auth: AuthService, options: HttpAuthOptions = {}): HttpAuth {
  const realm = realmResolver(auth, options.publicUrl);
  const requireAdmin = createRequireAdmin(auth);
  const routes = express.Router({ caseSensitive: true, strict: true });
  if (auth.tokens.issuing) registerTokenRoutes(routes, auth, realm);
  registerAccountRoutes(routes, auth, requireAdmin);
  return {
    authenticate: createAuthenticate(auth, realm, (req) => requiredAccess(req.method, req.path)),
    authenticateFor: (required) => createAuthenticate(auth, realm, required),
    requireAdmin,
    requireReader: createRequireReader(auth),
    routes,
  };
}

function realmResolver(auth: AuthService, publicUrl: string | undefined): RealmResolver {
  const fixed = auth.config.external?.realm ?? auth.config.realm;
  if (fixed) return () => fixed;
  if (publicUrl) {
    const realm = `${publicUrl.replace(/\/+$/, '')}/auth/token`;
    return () => realm;
  }
  // req.protocol and req.host follow X-Forwarded-Proto/-Host when http.trustProxy trusts the proxy.
  return (req) => `${req.protocol}://${req.host ?? 'localhost'}/auth/token`;
}

/**
 * What a Bearer token lets its holder do. A token this registry issued is also checked against
 * the account as it is now, so deleting a user, revoking a robot or removing a grant takes
 * effect at once rather than when the token expires.
 */
interface TokenAuthorization {
  principal: Principal | null;
  allows(type: string, name: string, action: string): boolean;
  access: RepositoryAccess;
}

async function authorizeToken(auth: AuthService, verified: VerifiedToken): Promise<TokenAuthorization | null> {
  if (verified.origin === 'external') {
    const allows = (type: string, name: string, action: string) => accessAllows(verified.access, type, name, action);
    return {
      principal: null,
      allows,
      access: { canPull: (repository) => allows('repository', repository, 'pull'), canPush: (repository) => allows('repository', repository, 'push') },
    };
  }
  const principal = await auth.principalForToken(verified.subject, verified.account);
  if (!principal) return null;
  const policy = await auth.policyFor(principal);
  const allows = (type: string, name: string, action: string) =>
    accessAllows(verified.access, type, name, action) && policy.allowsAction(type, name, action);
  return {
    principal,
    allows,
    // Reading another repository (mount sources, known-blob links) needs only the account's own right to pull it.
    access: { canPull: (repository) => policy.canPull(repository), canPush: (repository) => allows('repository', repository, 'push') },
  };
}

function createAuthenticate(auth: AuthService, realm: RealmResolver, requiredFor: (req: Request) => RequiredAccess): RequestHandler {
  return async (req, res, next) => {
    const required = requiredFor(req);
    const scope = required.kind === 'scope' ? required.scope : undefined;
    const address = clientAddress(req);
    const unauthorized = (error?: 'invalid_token' | 'insufficient_scope') =>
      new RegistryError('UNAUTHORIZED', error === 'insufficient_scope' ? 'access to the requested resource is not authorized' : undefined, accessDetail(scope), {
        headers: { 'WWW-Authenticate': bearerChallenge({ realm: realm(req), service: auth.service, scope, error }) },
      });

    const header = authorization(req);
    if (!header) throw unauthorized();

    if (header.scheme === 'bearer') {
      const verified = verifyOrRefuse(auth, header.credentials, address, () => unauthorized('invalid_token'));
      const granted = await authorizeToken(auth, verified);
      if (!granted) {
        auth.audit(verified.subject, address, 'token subject no longer exists, may no longer log in, or is a later account of the same name');
        throw unauthorized('invalid_token');
      }
      if (scope && !scope.actions.every((action) => granted.allows(scope.type, scope.name, action))) throw unauthorized('insufficient_scope');
      const actor = granted.principal ? actorOf(granted.principal) : { name: verified.subject || 'anonymous', kind: verified.subject ? ('user' as const) : ('anonymous' as const) };
      res.locals.caller = { actor, access: granted.access } satisfies CallerContext;
      return next();
    }

    if (header.scheme === 'basic') {
      // For scripts that skip the token dance (`curl -u`): a user's or robot's credentials
      // straight to /v2/, throttled like any login (and not re-hashed while remembered).
      const credentials = basicCredentials(header.credentials);
      if (!credentials) throw unauthorized();
      const principal = await loginOrThrow(auth, credentials, address, unauthorized);
      const policy = await auth.policyFor(principal);
      if (scope && !scope.actions.every((action) => policy.allowsAction(scope.type, scope.name, action))) {
        throw new RegistryError('DENIED', undefined, accessDetail(scope));
      }
      res.locals.caller = {
        actor: actorOf(principal),
        access: { canPull: (repository) => policy.canPull(repository), canPush: (repository) => policy.allows(repository, 'push') },
      } satisfies CallerContext;
      return next();
    }

    throw unauthorized();
  };
}

/** Verifies a Bearer token; a refused one is audited (subject, address, reason) and answered with `refusal()`. */
function verifyOrRefuse(auth: AuthService, token: string, address: string, refusal: () => RegistryError): VerifiedToken {
  try {
    return auth.tokens.verify(token);
  } catch (error) {
    if (!(error instanceof TokenError)) throw error;
    auth.audit(error.subject, address, error.reason);
    throw refusal();
  }
}

async function loginOrThrow(
  auth: AuthService,
  credentials: { username: string; password: string },
  address: string,
  unauthorized: () => RegistryError,
): Promise<Principal> {
  try {
    return await auth.login(credentials.username, credentials.password, address);
  } catch (error) {
    if (error instanceof LoginThrottled) throw throttledError(error);
    if (error instanceof LoginFailed) throw unauthorized();
    throw error;
  }
}

/**
 * Guards the admin APIs: HTTP Basic with an admin's name and password, or a Bearer token this
 * registry issued for the `registry:admin:*` scope to an admin. Sets `res.locals.caller`.
 */
export function createRequireAdmin(auth: AuthService): RequestHandler {
  return async (req, res, next) => {
    const address = clientAddress(req);
    const unauthorized = () =>
      new RegistryError('UNAUTHORIZED', 'admin credentials required', undefined, {
        headers: { 'WWW-Authenticate': basicChallenge(`${auth.service} admin`) },
      });
    const header = authorization(req);
    let principal: Principal | null = null;
    if (header?.scheme === 'basic') {
      const credentials = basicCredentials(header.credentials);
      if (!credentials) throw unauthorized();
      principal = await loginOrThrow(auth, credentials, address, unauthorized);
    } else if (header?.scheme === 'bearer') {
      const verified = verifyOrRefuse(auth, header.credentials, address, unauthorized);
      const granted = verified.origin === 'local' ? await authorizeToken(auth, verified) : null;
      if (!granted?.principal || !granted.allows(ADMIN_SCOPE.type, ADMIN_SCOPE.name, '*')) {
        throw new RegistryError('DENIED', 'this token does not grant registry:admin:*');
      }
      principal = granted.principal;
    } else {
      throw unauthorized();
    }
    if (!principal.admin) throw new RegistryError('DENIED', 'admin role required');
    res.locals.caller = { actor: actorOf(principal), access: UNRESTRICTED_ACCESS } satisfies CallerContext;
    next();
  };
}

/**
 * Guards read APIs that show each caller only the repositories it may pull (the events
 * timeline): HTTP Basic with a user's or robot's credentials, a Bearer token this registry or
 * the external token service issued, or nothing (anonymous: public repositories only). What it
 * may pull is the account's own right, whatever the token's scopes; `admin` is an admin's Basic
 * credentials or a token granting `registry:admin:*`. Sets `res.locals.caller`.
 */
export function createRequireReader(auth: AuthService): RequestHandler {
  return async (req, res, next) => {
    const address = clientAddress(req);
    const unauthorized = () =>
      new RegistryError('UNAUTHORIZED', 'valid credentials required', undefined, { headers: { 'WWW-Authenticate': basicChallenge(auth.service) } });
    const header = authorization(req);
    let caller: CallerContext;
    if (header?.scheme === 'bearer') {
      const verified = verifyOrRefuse(auth, header.credentials, address, unauthorized);
      const granted = await authorizeToken(auth, verified);
      if (!granted) throw unauthorized();
      const principal = granted.principal;
      const policy = principal ? await auth.policyFor(principal) : null;
      caller = {
        actor: principal ? actorOf(principal) : { name: verified.subject || 'anonymous', kind: verified.subject ? 'user' : 'anonymous' },
        access: policy ? { canPull: (repository) => policy.canPull(repository), canPush: () => false } : granted.access,
        admin: Boolean(principal?.admin && granted.allows(ADMIN_SCOPE.type, ADMIN_SCOPE.name, '*')),
      };
    } else if (header?.scheme === 'basic') {
      const credentials = basicCredentials(header.credentials);
      if (!credentials) throw unauthorized();
      const principal = await loginOrThrow(auth, credentials, address, unauthorized);
      const policy = await auth.policyFor(principal);
      caller = { actor: actorOf(principal), access: { canPull: (repository) => policy.canPull(repository), canPush: () => false }, admin: principal.admin };
    } else if (!header) {
      const policy = await auth.policyFor(ANONYMOUS);
      caller = { actor: actorOf(ANONYMOUS), access: { canPull: (repository) => policy.canPull(repository), canPush: () => false }, admin: false };
    } else {
      throw unauthorized();
    }
    res.locals.caller = caller;
    next();
  };
}
