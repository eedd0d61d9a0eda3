/**
 * Socket errors that mean a server cannot be reached right now (it is down, restarting, or the
 * network between is cut), as opposed to a server that answered and refused. Shared by the
 * backends on the network (PostgreSQL, the object store), which report such errors as 503.
 */

/** Node's codes for a connection refused, reset, timed out or unroutable, a name that does not resolve (yet), a pipe closed under a write. */
const UNREACHABLE_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ECONNABORTED', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN', 'EPIPE']);
/** How deep wrapped errors are looked into (drivers wrap, and wrap again). */
const MAX_DEPTH = 5;

/**
 * Whether `error`, or an error it wraps (`cause`, or one of an AggregateError's `errors`, as
 * Node's connect gives when every address of a host failed), is such a socket error.
 */
export function isUnreachable(error: unknown, depth = 0): boolean {
  if (!(error instanceof Error) || depth > MAX_DEPTH) return false;
  const code = (error as NodeJS.ErrnoException).code;
  if (typeof code === 'string' && UNREACHABLE_CODES.has(code)) return true;
  if (error instanceof AggregateError && error.errors.some((inner) => isUnreachable(inner, depth + 1))) return true;
  return isUnreachable(error.cause, depth + 1);
}
