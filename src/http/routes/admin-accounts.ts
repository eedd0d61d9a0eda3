/**
 * The admin JSON API for accounts, behind `requireAdmin`:
 *
 *   GET    /api/v1/users                      list users (with grants)
 *   POST   /api/v1/users                      {name, password, role?, grants?} → 201
 *   GET    /api/v1/users/:name
 *   PATCH  /api/v1/users/:name                {password?, role?}
 *   DELETE /api/v1/users/:name                → 204 (never the last admin)
 *   GET    /api/v1/robots                     list robots
 *   POST   /api/v1/robots                     {name, grants, description?, expiresAt? | expiresIn?} → 201 with the secret, shown once
 *   GET    /api/v1/robots/:name
 *   DELETE /api/v1/robots/:name               revoke → 204
 *   GET    /api/v1/{users|robots}/:name/grants
 *   POST   /api/v1/{users|robots}/:name/grants            {pattern, actions} → 201
 *   DELETE /api/v1/{users|robots}/:name/grants?pattern=…  → 204
 */
import express, { type ErrorRequestHandler, type Request, type RequestHandler, type Router } from 'express';
import { z } from 'zod';
import { AccountError, AccountManager, parseExpiry } from '../../auth/management.js';
import { ROBOT_LOGIN_PREFIX } from '../../auth/principals.js';
import type { AuthService } from '../../auth/service.js';
import { RegistryError } from '../../registry/errors.js';
import { caller, sendEmpty } from '../wire.js';

const grantBody = z
  .object({
    pattern: z.string(),
    actions: z.union([z.string(), z.array(z.string())]),
  })
  .strict();

const createUserBody = z
  .object({
    name: z.string(),
    password: z.string(),
    role: z.enum(['admin', 'user']).optional(),
    grants: z.array(grantBody).max(100).optional(),
  })
  .strict();

const updateUserBody = z
  .object({
    password: z.string().optional(),
    role: z.enum(['admin', 'user']).optional(),
  })
  .strict();

const createRobotBody = z
  .object({
    name: z.string(),
    description: z.string().optional(),
    /** ISO date. */
    expiresAt: z.string().optional(),
    /** Duration from now: `30d`, `12h`, `90m`. */
    expiresIn: z.string().optional(),
    grants: z.array(grantBody).min(1).max(100),
  })
  .strict();

export function registerAccountRoutes(router: Router, auth: AuthService, requireAdmin: RequestHandler): void {
  const accounts = new AccountManager(auth.store, auth.now);
  const api = express.Router({ caseSensitive: true });
  api.use(['/users', '/robots'], express.json({ limit: '64kb' }));

  api.get('/users', async (_req, res) => {
    res.json({ users: await accounts.listUsers() });
  });

  api.post('/users', async (req, res) => {
    const body = parseBody(createUserBody, req);
    res.status(201).json(await accounts.createUser(body));
  });

  api.get('/users/:name', async (req, res) => {
    res.json(await accounts.getUser(param(req, 'name')));
  });

  api.patch('/users/:name', async (req, res) => {
    const name = param(req, 'name');
    const body = parseBody(updateUserBody, req);
    if (body.password !== undefined) await accounts.setPassword(name, body.password);
    if (body.role !== undefined) await accounts.setRole(name, body.role);
    res.json(await accounts.getUser(name));
  });

  api.delete('/users/:name', async (req, res) => {
    await accounts.deleteUser(param(req, 'name'));
    sendEmpty(res, 204);
  });

  api.get('/robots', async (_req, res) => {
    res.json({ robots: await accounts.listRobots() });
  });

  api.post('/robots', async (req, res) => {
    const body = parseBody(createRobotBody, req);
    if (body.expiresAt !== undefined && body.expiresIn !== undefined) throw new RegistryError('INVALID_REQUEST', 'give expiresAt or expiresIn, not both');
    const expiry = body.expiresAt ?? body.expiresIn;
    const created = await accounts.createRobot({
      name: body.name,
      description: body.description,
      expiresAt: expiry === undefined ? null : parseExpiry(expiry, auth.now()),
      grants: body.grants,
      createdBy: caller(res).actor.name,
    });
    res.status(201).set('Cache-Control', 'no-store').json({ ...created.robot, secret: created.secret });
  });

  api.get('/robots/:name', async (req, res) => {
    res.json(await accounts.getRobot(param(req, 'name')));
  });

  api.delete('/robots/:name', async (req, res) => {
    await accounts.revokeRobot(param(req, 'name'));
    sendEmpty(res, 204);
  });

  for (const kind of ['users', 'robots'] as const) {
    const login = (req: Request) => (kind === 'robots' ? ROBOT_LOGIN_PREFIX : '') + param(req, 'name');
    api.get(`/${kind}/:name/grants`, async (req, res) => {
      res.json({ grants: await accounts.listGrants(login(req)) });
    });
    api.post(`/${kind}/:name/grants`, async (req, res) => {
      res.status(201).json(await accounts.addGrant(login(req), parseBody(grantBody, req)));
    });
    api.delete(`/${kind}/:name/grants`, async (req, res) => {
      const pattern = req.query.pattern;
      if (typeof pattern !== 'string') throw new RegistryError('INVALID_REQUEST', 'the pattern query parameter names the grant to remove');
      await accounts.removeGrant(login(req), pattern);
      sendEmpty(res, 204);
    });
  }

  api.use(translateErrors);
  router.use(['/api/v1/users', '/api/v1/robots'], requireAdmin);
  router.use('/api/v1', api);
}

function param(req: Request, name: string): string {
  const value = (req.params as Record<string, string | undefined>)[name];
  if (value === undefined) throw new Error(`route has no parameter ${name}`);
  return value;
}

function parseBody<T extends z.ZodType>(schema: T, req: Request): z.infer<T> {
  const result = schema.safeParse(req.body ?? {});
  if (result.success) return result.data;
  const issues = result.error.issues.map((issue) => `${issue.path.join('.') || '(body)'}: ${issue.message}`);
  throw new RegistryError('INVALID_REQUEST', `invalid request body: ${issues.join('; ')}`);
}

/** Account errors become the registry's error codes (body-parser failures are the app's error handler's). */
const translateErrors: ErrorRequestHandler = (error, _req, _res, next) => {
  if (error instanceof AccountError) {
    const code = error.kind === 'invalid' ? 'INVALID_REQUEST' : error.kind === 'not-found' ? 'NOT_FOUND' : 'CONFLICT';
    return next(new RegistryError(code, error.message));
  }
  next(error);
};
