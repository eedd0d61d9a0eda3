/**
 * Small helpers shared by the route handlers: reading path and query parameters in the
 * spec's terms, the per-request caller context, and the few headers every handler writes.
 */
import type { IncomingHttpHeaders, ServerResponse } from 'node:http';
import type { Request, Response } from 'express';
import { RegistryError } from '../registry/errors.js';
import { ANONYMOUS_ACTOR, UNRESTRICTED_ACCESS, type Actor, type ByteRange, type RepositoryAccess, type RequestContext } from '../registry/ports.js';
import { assertName } from '../registry/references.js';

/**
 * A streamed body's progress, kept in `res.locals.bodyDelivery` by routes that stream: every
 * byte handed out means the response was delivered even if the client hung up before the
 * stream could end it.
 */
export interface BodyDelivery {
  expected: number;
  sent: number;
}

/** Whether the server completed its response (ended it, or handed out every byte of a streamed body). */
export function responseCompleted(res: ServerResponse & { locals?: Record<string, unknown> }): boolean {
  const delivery = res.locals?.bodyDelivery as BodyDelivery | undefined;
  return res.writableEnded || (delivery !== undefined && delivery.sent >= delivery.expected);
}

/** Who is calling and what they may do; set by the auth layer, open by default. */
export interface CallerContext {
  actor: Actor;
  access: RepositoryAccess;
  /** Set by guards that decide it (admin, reader): whether the caller is an administrator. */
  admin?: boolean;
}

/** The caller, its actor carrying the request context (request-context.ts) its changes' events record. */
export function caller(res: Response): CallerContext {
  const context = (res.locals.caller as CallerContext | undefined) ?? { actor: ANONYMOUS_ACTOR, access: UNRESTRICTED_ACCESS };
  const request = res.locals.requestContext as RequestContext | undefined;
  return request ? { ...context, actor: { ...context.actor, request } } : context;
}

/** The repository name captured by a route pattern's first group. */
export function repositoryParam(req: Request): string {
  return assertName(pathParam(req, 0));
}

export function pathParam(req: Request, index: number): string {
  const value = (req.params as Record<number, string | undefined>)[index];
  if (value === undefined) throw new Error(`route has no capture group ${index}`);
  return value;
}

/** A single-valued query parameter; repeated parameters are refused rather than guessed at. */
export function queryParam(req: Request, name: string): string | undefined {
  const value = req.query[name];
  if (value === undefined) return undefined;
  if (typeof value !== 'string') {
    throw new RegistryError('UNSUPPORTED', `query parameter ${name} must be given once`, { parameter: name }, { status: 400 });
  }
  return value;
}

/** The `n` of a paginated listing: a non-negative integer, or undefined. */
export function pageSizeParam(req: Request): number | undefined {
  const raw = queryParam(req, 'n');
  if (raw === undefined || raw === '') return undefined;
  if (!/^\d{1,9}$/.test(raw)) {
    throw new RegistryError('PAGINATION_NUMBER_INVALID', `n must be a non-negative integer, not ${JSON.stringify(raw)}`, { n: raw });
  }
  return Number(raw);
}

/** The `Link` header pointing at the next page of a listing. */
export function nextPageLink(path: string, n: number | undefined, last: string): string {
  const query = new URLSearchParams();
  if (n !== undefined) query.set('n', String(n));
  query.set('last', last);
  return `<${path}?${query.toString()}>; rel="next"`;
}

export function contentLength(req: { headers: IncomingHttpHeaders }): number | undefined {
  const raw = req.headers['content-length'];
  return raw === undefined ? undefined : Number(raw);
}

/** True when the request carries a body (a non-zero length, or a chunked one). */
export function hasBody(req: { headers: IncomingHttpHeaders }): boolean {
  const length = contentLength(req);
  return (length !== undefined && length > 0) || req.headers['transfer-encoding'] !== undefined;
}

/**
 * Parses an upload chunk's `Content-Range`. The spec's form is `<start>-<end>`; the
 * `bytes ` prefix and `/<total>` suffix some clients add are tolerated.
 */
export function uploadContentRange(req: Request): ByteRange | undefined {
  const raw = req.headers['content-range'];
  if (raw === undefined) return undefined;
  const match = /^(?:bytes[ =])?(\d+)-(\d+)(?:\/(?:\d+|\*))?$/.exec(raw.trim());
  if (!match) {
    throw new RegistryError('BLOB_UPLOAD_INVALID', `malformed Content-Range: ${JSON.stringify(raw)}`, undefined, { status: 416 });
  }
  return { start: Number(match[1]), end: Number(match[2]) };
}

/** Answers with no body and an explicit zero length, as registries do for 201/202/204. */
export function sendEmpty(res: Response, status: number, headers: Record<string, string> = {}): void {
  res.status(status).set(headers);
  if (status !== 204) res.set('Content-Length', '0');
  res.end();
}
