/** Reading credentials off a request: the Authorization header, Basic pairs, the client address. */
import type { Request } from 'express';
import type { LoginThrottled } from '../auth/service.js';
import { RegistryError } from '../registry/errors.js';

/** The token endpoint URL announced in challenges. */
export type RealmResolver = (req: Request) => string;

/** The client address failures are counted against and logged with. */
export function clientAddress(req: Request): string {
  return req.ip ?? req.socket.remoteAddress ?? 'unknown';
}

/** Splits an `Authorization` header into scheme (lowercased) and credentials. */
export function authorization(req: Request): { scheme: string; credentials: string } | null {
  const header = req.headers.authorization;
  if (!header) return null;
  const space = header.indexOf(' ');
  if (space < 0) return { scheme: header.toLowerCase(), credentials: '' };
  return { scheme: header.slice(0, space).toLowerCase(), credentials: header.slice(space + 1).trim() };
}

/** Decodes HTTP Basic credentials; null when malformed. */
export function basicCredentials(credentials: string): { username: string; password: string } | null {
  if (credentials.length > 4096) return null;
  const decoded = Buffer.from(credentials, 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon <= 0) return null;
  return { username: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
}

/** Maps a throttled login to 429 TOOMANYREQUESTS with Retry-After. */
export function throttledError(error: LoginThrottled): RegistryError {
  const message = error.busy ? 'too many logins are being checked right now; try again shortly' : 'too many failed login attempts; try again later';
  return new RegistryError('TOOMANYREQUESTS', message, undefined, {
    headers: { 'Retry-After': String(error.retryAfterSeconds) },
  });
}
