/**
 * The agent's HTTP endpoint:
 * - `POST <path>`: a delivery. Reads the body (bounded, 413), authenticates it and reads the event
 *   (delivery.ts: 401, 400), answers pings, drops events it has already taken (200, duplicate),
 *   picks the targets whose filters match (200, ignored, when none), takes the deploys durably and
 *   answers 202 at once: deploys take longer than any webhook timeout.
 * - `GET <status.path>`: recent deploys, for `Authorization: Bearer <status token>` (status.ts).
 * - `GET /healthz`: 200, for probes.
 */
import type http from 'node:http';
import type { Logger } from 'pino';
import { isDigestSyntax, isValidName, isValidTag } from '../registry/references.js';
import { compileFilter } from '../webhooks/filters.js';
import { PING_EVENT_TYPE } from '../webhooks/types.js';
import { HEALTH_PATH, type AgentConfig, type TargetConfig } from './config.js';
import type { Deployer } from './deployer.js';
import { readDelivery } from './delivery.js';
import type { AgentState, DeployEvent } from './state.js';
import { statusView } from './status.js';

export interface ReceiverOptions {
  config: AgentConfig;
  secret: string;
  /** Bearer token of the status view; null: the view is off. */
  statusToken: string | null;
  state: AgentState;
  deployer: Deployer;
  logger: Logger;
  now?: () => number;
}

interface CompiledTarget {
  target: TargetConfig;
  matches(event: DeployEvent): boolean;
}

type Answer = { status: number; body: Record<string, unknown>; headers?: Record<string, string> };

export function compileTarget(target: TargetConfig): CompiledTarget {
  const repository = compileFilter(target.repositories);
  const tag = compileFilter(target.tags);
  const types = new Set<string>(target.events);
  return {
    target,
    matches: (event) =>
      types.has(event.type) &&
      event.repository !== null &&
      repository(event.repository) &&
      (target.tags.length === 0 || (event.tag !== null && tag(event.tag))),
  };
}

export function createReceiver(options: ReceiverOptions): http.RequestListener {
  const { config, secret, state, deployer, logger } = options;
  const now = options.now ?? Date.now;
  const targets = config.targets.map(compileTarget);

  return (req, res) => {
    const reply = ({ status, body, headers }: Answer) => {
      if (res.headersSent) return;
      res.writeHead(status, { 'Content-Type': 'application/json', 'Cache-Control': 'no-store', ...headers }).end(JSON.stringify(body));
    };
    const url = new URL(req.url ?? '/', 'http://agent');
    if (url.pathname === HEALTH_PATH) return reply(req.method === 'GET' || req.method === 'HEAD' ? { status: 200, body: { ok: true } } : { status: 405, body: { error: 'only GET' } });
    if (url.pathname === config.status.path) {
      if (req.method !== 'GET') return reply({ status: 405, body: { error: 'only GET' } });
      return reply(statusView({ agent: config.name, token: options.statusToken, authorization: req.headers.authorization, query: url.searchParams, jobs: state.jobs(), now: now() }));
    }
    if (url.pathname !== config.path) return reply({ status: 404, body: { error: 'not found' } });
    if (req.method !== 'POST') return reply({ status: 405, body: { error: 'only POST' } });

    const chunks: Buffer[] = [];
    let size = 0;
    let refused = false;
    req.on('data', (chunk: Buffer) => {
      if (refused) return;
      size += chunk.length;
      if (size > config.maxBodyBytes) {
        refused = true;
        reply({ status: 413, body: { error: `body larger than ${config.maxBodyBytes} bytes` } });
        req.destroy();
        return;
      }
      chunks.push(chunk);
    });
    req.on('error', () => undefined);
    req.on('end', () => {
      if (refused) return;
      let answer: Answer;
      try {
        answer = handle(Buffer.concat(chunks, size), req.headers);
      } catch (error) {
        // The state could not be written (disk full, …): the registry will try again.
        logger.error({ err: error }, 'delivery could not be taken');
        answer = { status: 503, body: { error: 'the agent cannot record the delivery now' } };
      }
      if (answer.status >= 400) logger.warn({ status: answer.status, reason: answer.body.error, remote: req.socket.remoteAddress }, 'delivery refused');
      reply(answer);
    });
  };

  function handle(body: Buffer, headers: http.IncomingHttpHeaders): Answer {
    const verdict = readDelivery(secret, body, headers, config.maxSkewSeconds, now());
    if (!verdict.ok) return { status: verdict.status, body: { error: verdict.error } };
    const { event, callbackUrl } = verdict.delivery;
    if (event.type === PING_EVENT_TYPE) return { status: 200, body: { pong: true } };
    if (event.id === '') return { status: 400, body: { error: 'event has no id' } };
    if (state.isDuplicate(event.id)) {
      logger.info({ event: event.id, type: event.type }, 'duplicate delivery dropped');
      return { status: 200, body: { duplicate: true, id: event.id } };
    }
    const matching = targets.filter((t) => t.matches(event));
    if (matching.length === 0) {
      logger.debug({ event: event.id, type: event.type, repository: event.repository, tag: event.tag }, 'event matches no target');
      return { status: 200, body: { ignored: true, id: event.id } };
    }
    const problem = malformed(event);
    if (problem) return { status: 400, body: { error: problem } };
    const taken = deployer.submit(
      event,
      callbackUrl,
      matching.map(({ target }) => target),
    );
    logger.info({ event: event.id, type: event.type, reference: event.reference, targets: taken }, 'event accepted');
    return { status: 202, body: { accepted: true, id: event.id, targets: taken } };
  }
}

/** What a deploy command may rely on: names and digests in their grammar (they reach a shell's environment). */
function malformed(event: DeployEvent): string | null {
  if (event.repository !== null && !isValidName(event.repository)) return 'invalid repository name';
  if (event.tag !== null && !isValidTag(event.tag)) return 'invalid tag';
  if (event.digest !== null && !isDigestSyntax(event.digest)) return 'invalid digest';
  if (event.registry !== null && !/^[A-Za-z0-9.:[\]-]{1,255}$/.test(event.registry)) return 'invalid registry host';
  if (event.reference !== null && /[\s\0]/.test(event.reference)) return 'invalid reference';
  return null;
}
