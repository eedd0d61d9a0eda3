/**
 * The webhook admin API under `/api/v1/webhooks`: subscriptions (create, list, show, change,
 * delete, ping), each subscription's delivery log, redelivery, and the failed deliveries of
 * every subscription, behind the `guard` middleware (who may manage webhooks); and, outside
 * it, the deploy-report callback receivers post to (signed with the subscription's secret). Errors are answered in the registry's `{"errors":[{code,message,detail}]}` shape.
 */
import express, { type ErrorRequestHandler, type IRouter, type Request, type RequestHandler } from 'express';
import type { WebhookErrorKind, WebhookService } from '../../webhooks/service.js';
import { WebhookError } from '../../webhooks/service.js';
import { WEBHOOKS_API_PATH } from '../../webhooks/deploys.js';
import type { DeliveryState } from '../../webhooks/types.js';
import { attemptView, deliveryView } from '../../webhooks/views.js';
import { SIGNATURE_HEADER } from '../../webhooks/signing.js';
import { caller } from '../wire.js';


const STATUS: Record<WebhookErrorKind, { status: number; code: string }> = {
  invalid: { status: 400, code: 'WEBHOOK_INVALID' },
  unauthorized: { status: 401, code: 'UNAUTHORIZED' },
  not_found: { status: 404, code: 'WEBHOOK_UNKNOWN' },
  conflict: { status: 409, code: 'WEBHOOK_CONFLICT' },
  read_only: { status: 409, code: 'WEBHOOK_READ_ONLY' },
};

const STATES: readonly DeliveryState[] = ['pending', 'delivered', 'failed'];

export function registerWebhookAdminRoutes(target: IRouter, webhooks: WebhookService, guard: RequestHandler): void {
  const router = express.Router({ caseSensitive: true, strict: false });
  // Deploy reports come from receivers, not admins: authenticated by the subscription's HMAC over the raw body.
  router.post('/:id/deliveries/:delivery/deploys', express.raw({ type: () => true, limit: '32kb' }), async (req, res) => {
    const body = Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0);
    const signature = req.headers[SIGNATURE_HEADER.toLowerCase()];
    await webhooks.deploys.receive(param(req, 'id'), deliveryParam(req), body, typeof signature === 'string' ? signature : undefined);
    res.status(204).end();
  });
  router.use(guard);
  router.use(express.json({ limit: '64kb', type: () => true }));

  router.get('/', async (_req, res) => {
    res.json({ subscriptions: await webhooks.listSubscriptions() });
  });

  router.post('/', async (req, res) => {
    const created = await webhooks.createSubscription(req.body);
    res.status(201).location(`${WEBHOOKS_API_PATH}/${created.id}`).json(created);
  });

  router.post('/deliveries/redeliver', async (req, res) => {
    res.status(202).json(await webhooks.redeliverMatching(req.body));
  });

  router.post('/:id/deliveries/redeliver', async (req, res) => {
    res.status(202).json(await webhooks.redeliverMatching({ ...(req.body as object), subscriptionId: param(req, 'id') }));
  });

  router.get('/deliveries/failed', async (req, res) => {
    const deliveries = await webhooks.failedDeliveries({ limit: intQuery(req, 'limit'), before: intQuery(req, 'before') });
    res.json({ deliveries: deliveries.map((d) => deliveryView(d)) });
  });

  router.get('/:id', async (req, res) => {
    res.json(await webhooks.getSubscription(param(req, 'id')));
  });

  router.patch('/:id', async (req, res) => {
    res.json(await webhooks.updateSubscription(param(req, 'id'), req.body));
  });

  router.delete('/:id', async (req, res) => {
    await webhooks.deleteSubscription(param(req, 'id'));
    res.status(204).end();
  });

  router.post('/:id/ping', async (req, res) => {
    const result = await webhooks.ping(param(req, 'id'), caller(res).actor.request);
    res.status(result.ok ? 200 : 502).json({ ok: result.ok, delivery: deliveryView(result.delivery), attempt: attemptView(result.attempt) });
  });

  router.get('/:id/deliveries', async (req, res) => {
    const state = stringQuery(req, 'state');
    if (state !== undefined && !STATES.includes(state as DeliveryState)) {
      throw new WebhookError('invalid', `state must be one of ${STATES.join(', ')}`);
    }
    const deliveries = await webhooks.listDeliveries(param(req, 'id'), {
      state: state as DeliveryState | undefined,
      limit: intQuery(req, 'limit'),
      before: intQuery(req, 'before'),
    });
    res.json({ deliveries: deliveries.map((d) => deliveryView(d)) });
  });

  router.get('/:id/deliveries/:delivery', async (req, res) => {
    res.json(deliveryView(await webhooks.getDelivery(param(req, 'id'), deliveryParam(req))));
  });

  router.post('/:id/deliveries/:delivery/redeliver', async (req, res) => {
    res.status(202).json(deliveryView(await webhooks.redeliver(param(req, 'id'), deliveryParam(req))));
  });

  router.post('/:id/redeliver', async (req, res) => {
    const eventId = (req.body as { eventId?: unknown } | undefined)?.eventId;
    if (typeof eventId !== 'string' || eventId === '') throw new WebhookError('invalid', 'eventId: required');
    res.status(202).json(deliveryView(await webhooks.redeliverEvent(param(req, 'id'), eventId)));
  });

  router.use(errorHandler);
  target.use(WEBHOOKS_API_PATH, router);
}

/** Webhook and request-body errors become 4xx here; anything else (auth, bugs) goes on to the app's handler. */
const errorHandler: ErrorRequestHandler = (error, _req, res, next) => {
  if (error instanceof WebhookError) {
    const { status, code } = STATUS[error.kind];
    res.status(status).json({ errors: [{ code, message: error.message, ...(error.details !== undefined ? { detail: error.details } : {}) }] });
    return;
  }
  const type = (error as { type?: unknown }).type;
  if (type === 'entity.parse.failed') {
    res.status(400).json({ errors: [{ code: 'WEBHOOK_INVALID', message: 'request body is not valid JSON' }] });
    return;
  }
  if (type === 'entity.too.large') {
    res.status(413).json({ errors: [{ code: 'WEBHOOK_INVALID', message: 'request body too large' }] });
    return;
  }
  next(error);
};

function param(req: Request, name: string): string {
  const value = (req.params as Record<string, string | undefined>)[name];
  if (value === undefined) throw new Error(`route has no parameter ${name}`);
  return value;
}

function deliveryParam(req: Request): number {
  const raw = param(req, 'delivery');
  if (!/^\d{1,15}$/.test(raw)) throw new WebhookError('not_found', `no delivery ${raw}`);
  return Number(raw);
}

function stringQuery(req: Request, name: string): string | undefined {
  const value = req.query[name];
  if (value === undefined) return undefined;
  if (typeof value !== 'string') throw new WebhookError('invalid', `query parameter ${name} must be given once`);
  return value;
}

function intQuery(req: Request, name: string): number | undefined {
  const value = stringQuery(req, name);
  if (value === undefined || value === '') return undefined;
  if (!/^\d{1,15}$/.test(value)) throw new WebhookError('invalid', `query parameter ${name} must be a non-negative integer`);
  return Number(value);
}
