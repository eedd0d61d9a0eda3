/**
 * An object store out of reach or overloaded, told apart from one that answered and refused:
 * the first is reported as 503 with Retry-After (registry/errors.ts `retryShortly`, the answer a
 * PostgreSQL outage gets too), which clients retry; the second keeps its meaning (a 403 is a
 * wrong key, a 404 a missing object) and, where nothing maps it, stays a 500.
 *
 * Every command the driver sends goes through {@link boundCommands}, which also bounds how long
 * the SDK may take (its own retries included) before that answer, so that a client is told
 * "try again" in seconds rather than after its own timeout:
 * - commands that only ask or answer with metadata (HEAD, GET until its headers, DELETE, the
 *   listings, starting and aborting multipart uploads) get ANSWER_DEADLINE_MS for all attempts;
 * - commands that carry a body (a part, a tail, a small blob) get, per attempt, a time to the
 *   answer that grows with the body, so a slow link is not taken for a dead store;
 * - server-side copies and completions are left to the store: their time grows with the
 *   object, and S3 keeps their connection busy while it works.
 */
import { PassThrough, type Readable } from 'node:stream';
import {
  CompleteMultipartUploadCommand,
  CopyObjectCommand,
  PutObjectCommand,
  S3ServiceException,
  UploadPartCommand,
  UploadPartCopyCommand,
  type S3Client,
} from '@aws-sdk/client-s3';
import { isRegistryError, retryShortly, type RegistryError } from '../../registry/errors.js';
import { isUnreachable } from '../../runtime/unreachable.js';

/** All attempts of a command that moves no data, to the answer's headers. */
export const ANSWER_DEADLINE_MS = 5_000;
/**
 * A TCP connection to the object store is set up in milliseconds (an ocean away, in well under
 * a second): one that is not there after this is a store out of reach.
 */
export const CONNECT_TIMEOUT_MS = 2_000;
/** Per attempt of a command with a body: this, plus the body at TRANSFER_FLOOR_BYTES_PER_MS. */
const TRANSFER_ANSWER_MS = 15_000;
/** 1 MiB/s: slower than that, the link counts as down. */
const TRANSFER_FLOOR_BYTES_PER_MS = 1024 * 1024 / 1000;

/** 500 InternalError, 502, 503 ServiceUnavailable / SlowDown, 504: S3's "try again" (AWS's error-retry guidance), and 429. */
const OVERLOADED_STATUSES = new Set([429, 500, 502, 503, 504]);
/**
 * S3's (and S3-compatible servers') names for an overloaded or stalled server, whatever the
 * status they come with; TimeoutError is the SDK's own, for a connection or an answer that did
 * not come in time.
 */
const OVERLOADED_NAMES = new Set([
  'SlowDown',
  'ServiceUnavailable',
  'InternalError',
  'RequestTimeout',
  'Throttling',
  'ThrottlingException',
  'RequestThrottled',
  'RequestLimitExceeded',
  'TooManyRequests',
  'TooManyRequestsException',
  'BandwidthLimitExceeded',
  'TimeoutError',
]);

/**
 * Whether `error` means the object store cannot serve right now: a socket error (refused,
 * reset, timed out, unresolvable), one of the SDK's timeouts, or an answer that says "overloaded,
 * try again" (5xx but 501, 429, SlowDown and its kin). Never an answer that refused the request
 * (403 AccessDenied, 404 NoSuchKey, 400 InvalidArgument, 501 NotImplemented, …).
 */
export function isObjectStoreUnavailable(error: unknown): boolean {
  if (!(error instanceof Error) || isRegistryError(error)) return false;
  if (isUnreachable(error) || OVERLOADED_NAMES.has(error.name)) return true;
  const status = (error as Partial<S3ServiceException>).$metadata?.httpStatusCode;
  return status !== undefined && OVERLOADED_STATUSES.has(status);
}

/** The 503 an unavailable object store answers clients with; the store's own error is its cause (in the log, not the body). */
export function objectStoreUnavailable(cause: unknown): RegistryError {
  return retryShortly('the object store is unavailable; try again shortly', undefined, cause);
}

/** `error` as the driver reports it: {@link objectStoreUnavailable} when the store is out of reach, else unchanged. */
export function reported(error: unknown): unknown {
  return isObjectStoreUnavailable(error) ? objectStoreUnavailable(error) : error;
}

/** The store's own error behind a reported one (messages that name the setting to fix read it). */
export function storeError(error: unknown): unknown {
  return isRegistryError(error) && error.status === 503 && error.cause !== undefined ? error.cause : error;
}

type Send = (command: unknown, options?: { abortSignal?: AbortSignal; requestTimeout?: number }) => Promise<unknown>;

const WITH_BODY = [PutObjectCommand, UploadPartCommand];
const COPIES = [CopyObjectCommand, UploadPartCopyCommand, CompleteMultipartUploadCommand];

/** Makes every command `client` sends bounded in time and reported as above; returns the client. */
export function boundCommands(client: S3Client): S3Client {
  const send = client.send.bind(client) as Send;
  const bounded: Send = async (command, options = {}) => {
    if (COPIES.some((type) => command instanceof type)) return send(command, options).catch((error: unknown) => Promise.reject(reported(error)));
    if (WITH_BODY.some((type) => command instanceof type)) {
      const bytes = Number((command as PutObjectCommand | UploadPartCommand).input.ContentLength ?? 0);
      const requestTimeout = TRANSFER_ANSWER_MS + Math.ceil(bytes / TRANSFER_FLOOR_BYTES_PER_MS);
      return send(command, { requestTimeout, ...options }).catch((error: unknown) => Promise.reject(reported(error)));
    }
    const deadline = new AbortController();
    const timer = setTimeout(() => deadline.abort(new Error(`the object store did not answer within ${ANSWER_DEADLINE_MS} ms`)), ANSWER_DEADLINE_MS);
    try {
      return await send(command, { abortSignal: deadline.signal, ...options });
    } catch (error) {
      throw deadline.signal.aborted ? objectStoreUnavailable(deadline.signal.reason) : reported(error);
    } finally {
      clearTimeout(timer);
    }
  };
  client.send = bounded as S3Client['send'];
  return client;
}

/** `body` with its errors reported as above: a store going away in the middle of a read is a 503 to whoever reads it. */
export function reportingErrors(body: Readable): Readable {
  const out = new PassThrough();
  body.on('error', (error) => out.destroy(reported(error) as Error));
  out.on('close', () => body.destroy());
  return body.pipe(out);
}
