/**
 * The lifecycle admin API, every route behind `guard` (who may administer the registry):
 *
 *   POST /api/v1/gc           {"dryRun"?: bool, "gracePeriodSeconds"?: int}  → the collection's report
 *   GET  /api/v1/gc           recent collections (?limit=, ?dryRuns=true to include dry runs) and the schedule
 *   GET  /api/v1/usage        registry totals and every repository's usage
 *   GET  /api/v1/usage/<name> one repository's usage
 *   POST /api/v1/fsck         {"repair"?: bool, "gracePeriodSeconds"?: int}  → findings (and repairs)
 *
 * Errors are the registry's `{"errors":[{code,message,detail}]}`, written by the app's error middleware.
 */
import express, { type IRouter, type Request, type RequestHandler, type Response } from 'express';
import { z } from 'zod';
import { RegistryError } from '../../registry/errors.js';
import type { Lifecycle } from '../../registry/lifecycle.js';
import { assertName } from '../../registry/references.js';

export const LIFECYCLE_API_PATH = '/api/v1';

const gcBody = z
  .object({
    dryRun: z.boolean().optional(),
    gracePeriodSeconds: z.number().int().nonnegative().optional(),
  })
  .strict();

const fsckBody = z
  .object({
    repair: z.boolean().optional(),
    gracePeriodSeconds: z.number().int().nonnegative().optional(),
  })
  .strict();

export function registerLifecycleAdminRoutes(target: IRouter, lifecycle: Lifecycle, guard: RequestHandler): void {
  const json = express.json({ limit: '16kb', type: () => true });

  target.post(`${LIFECYCLE_API_PATH}/gc`, guard, json, async (req: Request, res: Response) => {
    const body = parse(gcBody, req);
    res.json(await lifecycle.gc.run({ dryRun: body.dryRun, gracePeriodSeconds: body.gracePeriodSeconds, trigger: 'api' }));
  });

  target.get(`${LIFECYCLE_API_PATH}/gc`, guard, async (req, res) => {
    const limit = intQuery(req, 'limit') ?? 20;
    const runs = await lifecycle.gc.history(Math.min(limit, 1000), { includeDryRuns: stringQuery(req, 'dryRuns') === 'true' });
    const next = lifecycle.nextScheduledRun();
    const schedule = { intervalSeconds: lifecycle.settings.intervalSeconds, nextRunAt: next === null ? null : new Date(next).toISOString() };
    res.json({ runs, schedule });
  });

  target.get(`${LIFECYCLE_API_PATH}/usage`, guard, async (_req, res) => {
    res.json(await lifecycle.usage.registry());
  });

  target.get(new RegExp(`^${LIFECYCLE_API_PATH}/usage/(.+)$`), guard, async (req, res) => {
    const name = assertName((req.params as Record<number, string>)[0]!);
    const usage = await lifecycle.usage.repository(name);
    if (!usage) throw new RegistryError('NAME_UNKNOWN', `repository ${name} is not known to the registry`, { name });
    res.json(usage);
  });

  target.post(`${LIFECYCLE_API_PATH}/fsck`, guard, json, async (req: Request, res: Response) => {
    const body = parse(fsckBody, req);
    res.json(await lifecycle.fsck.run({ repair: body.repair, gracePeriodSeconds: body.gracePeriodSeconds }));
  });
}

function parse<T>(schema: z.ZodType<T>, req: Request): T {
  const result = schema.safeParse(req.body ?? {});
  if (result.success) return result.data;
  const issue = result.error.issues[0]!;
  const where = issue.path.length ? `${issue.path.join('.')}: ` : '';
  const message = issue.code === 'unrecognized_keys' ? `unknown field ${issue.keys.join(', ')}` : issue.message;
  throw new RegistryError('INVALID_REQUEST', `${where}${message}`, { issues: result.error.issues.map((i) => ({ path: i.path, message: i.message })) });
}

function stringQuery(req: Request, name: string): string | undefined {
  const value = req.query[name];
  if (value === undefined) return undefined;
  if (typeof value !== 'string') throw new RegistryError('INVALID_REQUEST', `query parameter ${name} must be given once`);
  return value;
}

function intQuery(req: Request, name: string): number | undefined {
  const value = stringQuery(req, name);
  if (value === undefined || value === '') return undefined;
  if (!/^\d{1,9}$/.test(value)) throw new RegistryError('INVALID_REQUEST', `query parameter ${name} must be a non-negative integer`);
  return Number(value);
}
