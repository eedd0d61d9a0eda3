/**
 * The first middleware of the app: the headers every response carries (API version, Server,
 * X-Request-Id), and, when the response is done, one histogram observation and one structured
 * log line per request. Cheap by construction: the route comes from the endpoint table, the
 * log line is skipped entirely when its level is off, and nothing is read from the body.
 *
 * Log fields: reqId, method, route, repository, status, bytesIn (Content-Length, or for a
 * chunked body the bytes read off the connection), bytesOut (bytes written to the connection,
 * headers included), durationMs, account, and `aborted` when the client went away first.
 * Never headers, query strings or bodies, so no credential can reach the log.
 */
import { randomBytes } from 'node:crypto';
import type { RequestHandler } from 'express';
import type { Logger } from 'pino';
import type { Metrics } from '../observability/metrics.js';
import { classifyPath, methodLabel, type RouteLabel } from '../observability/routes.js';
import { SERVER_HEADER } from '../version.js';
import { responseCompleted, type CallerContext } from './wire.js';

export const API_VERSION_HEADER = { 'Docker-Distribution-API-Version': 'registry/2.0' } as const;

/** Routes probed or scraped every few seconds: logged at debug, not info. */
const QUIET_ROUTES: ReadonlySet<RouteLabel> = new Set(['health', 'metrics']);
const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

export interface ObserveRequestsOptions {
  logger: Logger;
  metrics?: Metrics;
  /** Set by a graceful shutdown: responses then close their connection instead of keeping it alive. */
  closing?: () => boolean;
}

export function observeRequests({ logger, metrics, closing }: ObserveRequestsOptions): RequestHandler {
  const logInfo = logger.isLevelEnabled('info');
  const logDebug = logger.isLevelEnabled('debug');
  const prefix = randomBytes(4).toString('hex');
  let sequence = 0;
  const inFlight = metrics?.inFlight;

  return (req, res, next) => {
    const start = process.hrtime.bigint();
    const incoming = req.headers['x-request-id'];
    const reqId = typeof incoming === 'string' && REQUEST_ID.test(incoming) ? incoming : `${prefix}-${(++sequence).toString(36)}`;
    res.setHeader('Docker-Distribution-API-Version', API_VERSION_HEADER['Docker-Distribution-API-Version']);
    res.setHeader('Server', SERVER_HEADER);
    res.setHeader('X-Request-Id', reqId);
    if (closing?.()) res.setHeader('Connection', 'close');
    res.locals.requestId = reqId;
    if (inFlight) inFlight.count++;
    // Routers strip their mount path from req.url while they run: read the path now.
    const path = req.path;
    const socket = req.socket;
    const readAtStart = socket.bytesRead;
    const writtenAtStart = socket.bytesWritten;

    res.once('close', () => {
      if (inFlight) inFlight.count--;
      const { route, repository } = classifyPath(req.method, path);
      const seconds = Number(process.hrtime.bigint() - start) / 1e9;
      // Not writableFinished: a client that already read every byte may close the connection
      // before the flush is acknowledged, or before a streamed body's end reaches the response.
      const completed = responseCompleted(res);
      const status = completed ? res.statusCode : 499;
      metrics?.observeRequest(route, methodLabel(req.method), status, seconds);
      const quiet = QUIET_ROUTES.has(route);
      if (!(quiet ? logDebug : logInfo)) return;
      const declared = Number(req.headers['content-length']);
      const entry = {
        reqId,
        method: req.method,
        route,
        repository,
        status,
        bytesIn: req.complete && Number.isSafeInteger(declared) ? declared : socket.bytesRead - readAtStart,
        bytesOut: socket.bytesWritten - writtenAtStart,
        durationMs: Math.round(seconds * 1e6) / 1e3,
        account: (res.locals.caller as CallerContext | undefined)?.actor.name ?? 'anonymous',
        aborted: completed ? undefined : true,
      };
      if (quiet) logger.debug(entry, 'request');
      else logger.info(entry, 'request');
    });
    next();
  };
}
