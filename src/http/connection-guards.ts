/**
 * What keeps a connection from being held or answered badly below the routes:
 *
 * - An answer given before the request body has arrived (401 to an unauthenticated upload, an
 *   error) closes the connection: `Connection: close`, then a short lingering drain so the
 *   client can read the answer before the socket is destroyed. Node would otherwise read and
 *   discard the rest of the declared body for as long as the client cares to send it (one byte
 *   every 5 s held a connection open for good).
 * - A request body that stops arriving for `http.bodyIdleTimeoutSeconds` is aborted.
 * - Requests Node's parser refuses before any route could run (an unknown method such as
 *   `FOO /v2/`, oversized headers) are answered in the spec's JSON error format, not Node's
 *   bare `400`.
 */
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { Logger } from 'pino';
import { RegistryError, type ErrorCode } from '../registry/errors.js';
import { SERVER_HEADER } from '../version.js';
import { API_VERSION_HEADER } from './observe-requests.js';
import { hasBody } from './wire.js';

/** After an early answer, how long the rest of the body is read (and dropped) before the socket is destroyed. */
const LINGER_MS = 2_000;

/** True while the request still has body bytes to come. */
export function bodyStillComing(req: IncomingMessage): boolean {
  return hasBody(req) && !req.complete;
}

/**
 * Called before an answer is written: when the body has not all arrived, the answer closes the
 * connection. Closing at once would reset it under a client still sending, which may lose the
 * answer; so the socket is half-closed after the answer and destroyed once the client closes
 * too, or after LINGER_MS.
 */
export function closeAfterEarlyAnswer(req: IncomingMessage, res: ServerResponse): void {
  if (!bodyStillComing(req) || res.headersSent) return;
  res.setHeader('Connection', 'close');
  // A handler that stopped reading may have let go of the request's socket; the answer's is the same.
  const socket = res.socket ?? req.socket;
  if (!socket) return;
  // Node ends a `Connection: close` response with socket.destroySoon(): end, then destroy once
  // written. Here the destroy waits for the client, within the linger.
  socket.destroySoon = function lingeringClose(this: Socket) {
    lingeringEnd(this);
  };
}

/** Half-closes the socket (after `last`, if given) and destroys it when the client has closed too, or after LINGER_MS. */
function lingeringEnd(socket: Socket, last?: string): void {
  if (socket.writable) socket.end(last ?? '');
  const timer = setTimeout(() => socket.destroy(), LINGER_MS);
  timer.unref();
  socket.once('close', () => clearTimeout(timer));
}

/** Aborts request bodies that send nothing for `idleMs`; the connection is destroyed and the upload fails as a client hang-up would. */
export function abortIdleBodies(server: http.Server, idleMs: number, logger: Logger): void {
  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    if (!bodyStillComing(req)) return;
    const onIdle = () => {
      logger.warn({ method: req.method, path: req.url?.split('?', 1)[0], idleSeconds: idleMs / 1000 }, 'request body idle too long: connection closed');
      req.socket.destroy();
    };
    req.setTimeout(idleMs, onIdle);
    // Node emits `timeout` on the request only while its body is incomplete; once it is all in,
    // slow work behind it (or a slow reader of the answer) is no reason to cut the connection.
    res.on('timeout', () => req.socket.setTimeout(0));
    req.once('end', () => {
      req.off('timeout', onIdle);
      // Once the answer is done, Node manages the socket's timeout itself (keep-alive).
      if (!res.writableFinished) req.socket.setTimeout(0);
    });
  });
}

/** Answers what Node's HTTP parser refused in the spec's error format (Node's default is a bare 400). */
export function answerClientErrors(server: http.Server, logger: Logger): void {
  server.on('clientError', (error: NodeJS.ErrnoException, socket: Socket) => {
    // Nothing to answer on a connection that is gone, or one whose answer has begun.
    const inProgress = (socket as Socket & { _httpMessage?: ServerResponse | null })._httpMessage;
    if (error.code === 'ECONNRESET' || !socket.writable || inProgress?.headersSent) {
      socket.destroy();
      return;
    }
    const refusal = describeClientError(error, (error as { rawPacket?: Buffer }).rawPacket);
    logger.debug({ code: error.code, status: refusal.status }, 'malformed request refused');
    const body = JSON.stringify(refusal.toBody());
    const head = [
      `HTTP/1.1 ${refusal.status} ${http.STATUS_CODES[refusal.status] ?? ''}`,
      'Content-Type: application/json',
      `Content-Length: ${Buffer.byteLength(body)}`,
      'Connection: close',
      `Docker-Distribution-API-Version: ${API_VERSION_HEADER['Docker-Distribution-API-Version']}`,
      `Server: ${SERVER_HEADER}`,
    ];
    lingeringEnd(socket, `${head.join('\r\n')}\r\n\r\n${body}`);
  });
}

function describeClientError(error: NodeJS.ErrnoException, rawPacket: Buffer | undefined): RegistryError {
  const refuse = (code: ErrorCode, status: number, message: string, detail?: unknown) => new RegistryError(code, message, detail, { status });
  switch (error.code) {
    case 'HPE_INVALID_METHOD': {
      // RFC 9110 §9.1: a method the server does not recognise is answered 501.
      const method = /^([!#$%&'*+.^_`|~0-9A-Za-z-]{1,32}) /.exec(rawPacket?.subarray(0, 64).toString('latin1') ?? '')?.[1];
      return refuse('UNSUPPORTED', 501, `method ${method ?? '(unreadable)'} is not supported`, method ? { method } : undefined);
    }
    case 'HPE_HEADER_OVERFLOW':
      return refuse('INVALID_REQUEST', 431, 'request headers too large');
    case 'ERR_HTTP_REQUEST_TIMEOUT':
      return refuse('INVALID_REQUEST', 408, 'the request took too long to arrive');
    default:
      return refuse('INVALID_REQUEST', 400, 'malformed HTTP request');
  }
}
