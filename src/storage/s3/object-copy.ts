/**
 * Copies an object from the object store into a sink the way the filesystem driver copies a
 * file: the socket reads straight into two reused buffers (the `onread` option of net and tls),
 * a buffer is handed to the sink whole and refilled only once the sink called back for it, and
 * the socket stops reading while both are held, so a slow client slows the object store down
 * instead of filling memory.
 *
 * Why not the SDK's response stream: Node's HTTP client reads a response 64 KiB at a time into
 * a fresh Buffer, copies each body piece again into a second fresh Buffer and passes both through
 * the stream machinery. Relaying a layer that way cost 2-3 s of CPU per GiB (page faults of the
 * fresh memory, the copy, the collections, per-chunk JavaScript), about three times CNCF
 * distribution's Go driver on the same radosgw; reading into reused buffers costs 0.5-0.8 s,
 * reads up to a buffer per system call and leaves no garbage. The request is an ordinary GET
 * of a URL the SDK presigned (so signing, credentials and clock-skew correction stay the SDK's);
 * the response is parsed by http-parser-js, which hands body bytes as views of the buffer read.
 */
import net from 'node:net';
import type { Writable } from 'node:stream';
import tls from 'node:tls';
import { HTTPParser } from 'http-parser-js';
import { ANSWER_DEADLINE_MS, CONNECT_TIMEOUT_MS } from './availability.js';

/** Status and headers (names in lower case) of the object store's answer. */
export interface ObjectHead {
  status: number;
  headers: Map<string, string>;
}

export interface CopyObjectOptions {
  /** The `Range` header to send (`bytes=a-b`), if any. */
  range?: string;
  /**
   * Looks at the answer before any byte of its body is written: true to copy the body into the
   * sink, false to leave it (the caller answers another way). May throw to refuse it.
   */
  accept(head: ObjectHead): boolean;
  /** Bytes handed to the sink, as they are handed over. */
  onBytes?: (bytes: number) => void;
  /** Size of each of the two buffers; also the largest read. */
  bufferBytes?: number;
  connectTimeoutMs?: number;
  /** How long the object store may take, once connected, to begin its answer. */
  answerTimeoutMs?: number;
  /** How long the object store may send nothing while we are reading. */
  idleTimeoutMs?: number;
}

/**
 * - `copied`: the whole body is in the sink (every write called back).
 * - `declined`: nothing was written, because `accept` said no or the connection was refused or
 *   reset before the status line: the caller may ask again another way.
 *
 * A connection or an answer that does not come in time rejects (code ETIMEDOUT), having written
 * nothing: asking again another way would only wait as long again.
 */
export type CopyOutcome = 'copied' | 'declined';

const DEFAULT_BUFFER_BYTES = 1024 * 1024;
const DEFAULT_IDLE_TIMEOUT_MS = 60_000;
/** TLS sessions kept per origin, so that the next connection resumes instead of a full handshake. */
const tlsSessions = new Map<string, Buffer>();
const TLS_SESSIONS_KEPT = 64;

interface Slot {
  buffer: Buffer;
  /** How far the socket has read into the buffer since it was last taken up. */
  filled: number;
  /** Writes of this buffer's bytes the sink has not called back for yet. */
  pending: number;
}

/** A read has room for at least this much, or the copy moves on to the other buffer. */
const MIN_READ_BYTES = 64 * 1024;

/** GETs `url` (one connection, closed afterwards) and copies the body into `sink`. */
export function copyObject(url: URL, sink: Writable, options: CopyObjectOptions): Promise<CopyOutcome> {
  if (sink.destroyed) return Promise.reject(new Error('the destination closed before the blob was sent'));
  const bufferBytes = Math.max(options.bufferBytes ?? DEFAULT_BUFFER_BYTES, 2 * MIN_READ_BYTES);
  const idleTimeoutMs = options.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS;
  const connectTimeoutMs = options.connectTimeoutMs ?? CONNECT_TIMEOUT_MS;
  const answerTimeoutMs = options.answerTimeoutMs ?? ANSWER_DEADLINE_MS;
  const slots: Slot[] = [0, 1].map(() => ({ buffer: Buffer.allocUnsafeSlow(bufferBytes), filled: 0, pending: 0 }));
  let current = slots[0]!;
  return new Promise<CopyOutcome>((resolve, reject) => {
    let head: ObjectHead | undefined;
    let complete = false;
    let paused = false;
    let settled = false;
    let received = 0;
    /** Body bytes read but not yet handed to the sink: one run of the current buffer. */
    let unhanded: { slot: Slot; start: number; end: number } | null = null;
    let writesInFlight = 0;

    const finish = (error: unknown, outcome: CopyOutcome = 'copied') => {
      if (settled) return;
      settled = true;
      sink.off('close', onSinkClose);
      socket.destroy();
      if (error) reject(error);
      else resolve(outcome);
    };
    const finishIfDone = () => {
      if (complete && !unhanded && writesInFlight === 0) finish(undefined);
    };
    const onSinkClose = () => finish(new Error('the destination closed before the blob was sent'));

    /** Gives the sink what has arrived, in one write. */
    const handOver = () => {
      if (!unhanded || settled) return;
      const { slot, start, end } = unhanded;
      unhanded = null;
      slot.pending++;
      writesInFlight++;
      received += end - start;
      options.onBytes?.(end - start);
      sink.write(slot.buffer.subarray(start, end), (error) => {
        slot.pending--;
        writesInFlight--;
        if (error) return finish(error);
        if (settled) return;
        // The sink is waiting: what arrived meanwhile goes out now, gathered into one write.
        if (writesInFlight === 0) handOver();
        if (paused && current.pending === 0) {
          paused = false;
          socket.setTimeout(idleTimeoutMs);
          socket.resume();
        }
        finishIfDone();
      });
    };

    const parser = new HTTPParser(HTTPParser.RESPONSE);
    parser[HTTPParser.kOnHeadersComplete] = (info) => {
      const headers = new Map<string, string>();
      for (let i = 0; i + 1 < info.headers.length; i += 2) headers.set(info.headers[i]!.toLowerCase(), info.headers[i + 1]!);
      head = { status: info.statusCode, headers };
      socket.setTimeout(idleTimeoutMs);
      let accepted: boolean;
      try {
        accepted = options.accept(head);
      } catch (error) {
        finish(error);
        return;
      }
      if (!accepted) finish(undefined, 'declined');
    };
    parser[HTTPParser.kOnBody] = (chunk) => {
      if (settled) return;
      // A view of the buffer read into: runs that follow each other become one write.
      const start = chunk.byteOffset - current.buffer.byteOffset;
      if (unhanded && unhanded.slot === current && unhanded.end === start) unhanded.end += chunk.length;
      else {
        handOver();
        unhanded = { slot: current, start, end: start + chunk.length };
      }
    };
    parser[HTTPParser.kOnMessageComplete] = () => {
      complete = true;
    };

    const onread = {
      // Where the next read lands: the rest of the current buffer.
      buffer: () => current.buffer.subarray(current.filled),
      callback: (bytes: number, view: Buffer): boolean => {
        if (settled || complete) return false;
        current.filled += bytes;
        const parsed = parser.execute(view, 0, bytes);
        if (parsed instanceof Error && !complete) {
          finish(new Error(`the object store's answer is not valid HTTP: ${parsed.message}`));
          return false;
        }
        if (settled) return false;
        const full = current.buffer.length - current.filled < MIN_READ_BYTES;
        if (complete || full || writesInFlight === 0) handOver();
        if (complete) {
          finishIfDone();
          return false;
        }
        if (!full) return true;
        // Move on to the other buffer; while the sink still holds bytes of it, stop reading
        // (the object store then waits on TCP's window) until the sink calls back.
        current = current === slots[0] ? slots[1]! : slots[0]!;
        current.filled = 0;
        if (current.pending === 0) return true;
        paused = true;
        socket.setTimeout(0); // waiting on the client is not the object store idling
        return false;
      },
    };
    const https = url.protocol === 'https:';
    const port = Number(url.port) || (https ? 443 : 80);
    const host = url.hostname.replace(/^\[(.*)\]$/, '$1');
    const origin = `${host}:${port}`;
    // tls passes `onread` on to its socket (decrypted bytes land in our buffers); @types/node does not list it.
    const socket: net.Socket = https
      ? tls.connect({ host, port, servername: net.isIP(host) ? undefined : host, session: tlsSessions.get(origin), onread } as tls.ConnectionOptions)
      : net.connect({ host, port, onread });
    if (https) socket.on('session', (session: Buffer) => rememberSession(origin, session));
    let connected = false;
    socket.setTimeout(connectTimeoutMs);
    socket.once(https ? 'secureConnect' : 'connect', () => {
      connected = true;
      socket.setTimeout(answerTimeoutMs);
    });
    socket.on('timeout', () => {
      const waited = head ? `sent nothing for ${idleTimeoutMs} ms` : connected ? `did not answer within ${answerTimeoutMs} ms` : `did not connect within ${connectTimeoutMs} ms`;
      finish(Object.assign(new Error(`the object store at ${origin} ${waited}`), { code: 'ETIMEDOUT' }));
    });
    socket.on('error', (error) => {
      // Before an answer nothing was written: the caller can still ask another way.
      if (head) finish(error);
      else finish(undefined, 'declined');
    });
    socket.on('close', () => {
      if (!head) finish(undefined, 'declined');
      else if (!complete) finish(new Error(`the object store closed the connection after ${received} bytes of the body`));
    });
    sink.once('close', onSinkClose);
    socket.write(`GET ${url.pathname}${url.search} HTTP/1.1\r\nHost: ${url.host}\r\n${options.range ? `Range: ${options.range}\r\n` : ''}Connection: close\r\n\r\n`);
  });
}

function rememberSession(origin: string, session: Buffer): void {
  tlsSessions.delete(origin);
  tlsSessions.set(origin, session);
  if (tlsSessions.size > TLS_SESSIONS_KEPT) tlsSessions.delete(tlsSessions.keys().next().value!);
}
