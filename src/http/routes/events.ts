/**
 * `GET /api/v1/events`: the events timeline (webhooks/timeline.ts), newest first, for the
 * web interface and release managers: `?repository=&type=&limit=1..100&before=<seq>`. Behind
 * the reader guard: a caller sees the events of repositories it may pull (asking for one it
 * may not: 403) and only administrators see deliveries. Without auth everything is shown.
 */
import type { IRouter, Request, RequestHandler } from 'express';
import { RegistryError } from '../../registry/errors.js';
import { EVENT_TYPES, type EventType } from '../../registry/events.js';
import { assertName } from '../../registry/references.js';
import type { WebhookService } from '../../webhooks/service.js';
import { caller, queryParam } from '../wire.js';

export const EVENTS_API_PATH = '/api/v1/events';

export function registerEventRoutes(target: IRouter, webhooks: WebhookService, guard: RequestHandler | null): void {
  const open: RequestHandler = (_req, _res, next) => next();
  target.get(EVENTS_API_PATH, guard ?? open, async (req, res) => {
    const repository = optional(req, 'repository', (value) => assertName(value));
    const type = optional(req, 'type', (value) => {
      if (!(EVENT_TYPES as readonly string[]).includes(value)) throw invalid(`type must be one of ${EVENT_TYPES.join(', ')}`, { type: value });
      return value as EventType;
    });
    const limit = optional(req, 'limit', (value) => integer('limit', value, 1, 100)) ?? 50;
    const before = optional(req, 'before', (value) => integer('before', value, 1, Number.MAX_SAFE_INTEGER));
    const { access, admin } = caller(res);
    if (repository !== undefined && !access.canPull(repository)) {
      throw new RegistryError('DENIED', `no pull access to ${repository}`, { repository });
    }
    const viewer = { canPull: (name: string) => access.canPull(name), admin: guard === null || admin === true };
    res.json(await webhooks.timeline({ repository, type, limit, before }, viewer));
  });
}

function optional<T>(req: Request, name: string, parse: (value: string) => T): T | undefined {
  const value = queryParam(req, name);
  return value === undefined || value === '' ? undefined : parse(value);
}

function integer(name: string, value: string, min: number, max: number): number {
  const parsed = /^\d{1,16}$/.test(value) ? Number(value) : NaN;
  if (!(parsed >= min && parsed <= max)) throw invalid(`${name} must be a whole number from ${min} to ${max}`, { [name]: value });
  return parsed;
}

function invalid(message: string, detail: Record<string, string>): RegistryError {
  return new RegistryError('INVALID_REQUEST', message, detail, { status: 400 });
}
