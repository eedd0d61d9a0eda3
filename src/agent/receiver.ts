/**
 * The agent's HTTP endpoint. For every POST it: reads the body (bounded), checks the HMAC
 * signature over the exact bytes (401), parses any of the three delivery formats (400),
 * checks the signed timestamp is recent (401: a replay or a skewed clock), answers pings,
 * drops event ids it has already taken (200, duplicate), picks the targets whose filters
 * match (200, ignored, when none), remembers the id on disk, queues the deploys and answers
 * 202 at once: deploys take longer than any webhook timeout.
 */
import type http from 'node:http';
import type { Logger } from 'pino';
import { isDigestSyntax, isValidName, isValidTag } from '../registry/references.js';
import { compileFilter } from '../webhooks/filters.js';
import { parseDelivery, type ReceivedEvent } from '../webhooks/formats.js';
import { FLUX_SIGNATURE_HEADER, SIGNATURE_HEADER, verifySignature } from '../webhooks/signing.js';
import { PING_EVENT_TYPE } from '../webhooks/types.js';
import type { AgentConfig, TargetConfig } from './config.js';
import type { Deployer } from './deployer.js';
import type { EventLog } from './event-log.js';

export interface ReceiverOptions {
  config: AgentConfig;
  secret: string;
  events: EventLog;
  deployer: Deployer;
  logger: Logger;
  now?: () => number;
}

interface CompiledTarget {
  target: TargetConfig;
  matches(event: ReceivedEvent): boolean;
}

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
  const { config, secret, events, deployer, logger } = options;
  const now = options.now ?? Date.now;
  const targets = config.targets.map(compileTarget);

  return (req, res) => {
    const reply = (status: number, body: Record<string, unknown>) => {
      if (res.headersSent) return;
      res.writeHead(status, { 'Content-Type': 'application/json' }).end(JSON.stringify(body));
    };
    const url = new URL(req.url ?? '/', 'http://agent');
    if (url.pathname !== config.path) return reply(404, { error: 'not found' });
    if (req.method !== 'POST') return reply(405, { error: 'only POST' });

    const chunks: Buffer[] = [];
    let size = 0;
    let refused = false;
    req.on('data', (chunk: Buffer) => {
      if (refused) return;
      size += chunk.length;
      if (size > config.maxBodyBytes) {
        refused = true;
        reply(413, { error: `body larger than ${config.maxBodyBytes} bytes` });
        req.destroy();
        return;
      }
      chunks.push(chunk);
    });
    req.on('error', () => undefined);
    req.on('end', () => {
      if (refused) return;
      const body = Buffer.concat(chunks, size);
      const outcome = handle(body, req.headers);
      if (outcome.status >= 400) logger.warn({ status: outcome.status, reason: outcome.body.error, remote: req.socket.remoteAddress }, 'delivery refused');
      reply(outcome.status, outcome.body);
    });
  };

  function handle(body: Buffer, headers: http.IncomingHttpHeaders): { status: number; body: Record<string, unknown> } {
    const signature = header(headers, SIGNATURE_HEADER) ?? header(headers, FLUX_SIGNATURE_HEADER);
    if (!verifySignature(secret, body, signature)) return { status: 401, body: { error: 'bad or missing signature' } };
    let json: unknown;
    try {
      json = JSON.parse(body.toString('utf8'));
    } catch {
      return { status: 400, body: { error: 'body is not JSON' } };
    }
    const event = parseDelivery(json);
    if (!event) return { status: 400, body: { error: 'not a registry event (native, distribution or cloudevents)' } };
    if (!event.sentAt) return { status: 401, body: { error: 'no signed timestamp (sentAt) in the body' } };
    const skew = Math.abs(now() - event.sentAt.getTime());
    if (skew > config.maxSkewSeconds * 1000) {
      return { status: 401, body: { error: `timestamp ${event.sentAt.toISOString()} is outside the allowed ${config.maxSkewSeconds} s` } };
    }
    if (event.type === PING_EVENT_TYPE) return { status: 200, body: { pong: true } };
    if (event.id === '') return { status: 400, body: { error: 'event has no id' } };
    if (events.isDuplicate(event.id)) {
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
    events.record(event.id, 'accepted');
    const started = deployer.submit(
      event,
      matching.map(({ target }) => target),
    );
    logger.info({ event: event.id, type: event.type, reference: event.reference, targets: started }, 'event accepted');
    return { status: 202, body: { accepted: true, id: event.id, targets: started } };
  }
}

/** What a deploy command may rely on: names and digests in their grammar (they reach a shell's environment). */
function malformed(event: ReceivedEvent): string | null {
  if (event.repository !== null && !isValidName(event.repository)) return 'invalid repository name';
  if (event.tag !== null && !isValidTag(event.tag)) return 'invalid tag';
  if (event.digest !== null && !isDigestSyntax(event.digest)) return 'invalid digest';
  if (event.registry !== null && !/^[A-Za-z0-9.:[\]-]{1,255}$/.test(event.registry)) return 'invalid registry host';
  if (event.reference !== null && /[\s\0]/.test(event.reference)) return 'invalid reference';
  return null;
}

function header(headers: http.IncomingHttpHeaders, name: string): string | undefined {
  const value = headers[name.toLowerCase()];
  return Array.isArray(value) ? value[0] : value;
}
