/**
 * Records, for every request, the facts its changes' events carry (RequestContext): the
 * request id, the host and scheme the client addressed, its address and user agent. They are
 * read from this request alone: `Host`, or `X-Forwarded-Host`/`-Proto`/`-For` only when the
 * peer is a proxy `http.trustProxy` trusts (express's req.host, req.protocol and req.ip apply
 * that rule), and the host is kept only when it is a well-formed `host[:port]`. Nothing is
 * remembered between requests, so no request can choose the host of another's events.
 */
import type { Request, RequestHandler, Response } from 'express';
import type { RequestContext } from '../registry/ports.js';
import { normaliseRegistryHost } from '../registry/references.js';

const MAX_USER_AGENT = 512;

export function recordRequestContext(): RequestHandler {
  return (req, res, next) => {
    res.locals.requestContext = requestContextOf(req, res);
    next();
  };
}

export function requestContextOf(req: Request, res: Response): RequestContext {
  const userAgent = req.headers['user-agent'];
  return {
    id: typeof res.locals.requestId === 'string' ? res.locals.requestId : '',
    host: normaliseRegistryHost(req.host),
    scheme: req.protocol === 'https' ? 'https' : 'http',
    addr: req.ip ?? req.socket.remoteAddress ?? null,
    userAgent: typeof userAgent === 'string' && userAgent !== '' ? userAgent.slice(0, MAX_USER_AGENT) : null,
    method: req.method,
  };
}
