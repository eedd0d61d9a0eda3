/**
 * What every blob driver shares: the names it builds storage locations from (digests and
 * upload ids, checked before use so that a bad caller can never reach outside the driver's
 * root or prefix), the error for damaged content, and writing into a sink chunk by chunk.
 */
import type { Writable } from 'node:stream';
import { RegistryError } from '../registry/errors.js';

const SAFE_DIGEST = /^(sha256|sha512):([a-f0-9]{64}|[a-f0-9]{128})$/;
const SAFE_UPLOAD_ID = /^[a-zA-Z0-9-]{1,64}$/;

/** A digest's algorithm and hex, or a thrown error for anything unsafe. */
export function digestParts(digest: string): { algorithm: string; hex: string } {
  const match = SAFE_DIGEST.exec(digest);
  if (!match) throw new Error(`refusing unsafe digest path: ${digest}`);
  return { algorithm: match[1]!, hex: match[2]! };
}

/** Whether a name can be an upload id (names of other shapes in upload storage are not ours). */
export function isUploadId(id: string): boolean {
  return SAFE_UPLOAD_ID.test(id);
}

/** The id itself, or a thrown error for anything unsafe. */
export function checkedUploadId(id: string): string {
  if (!SAFE_UPLOAD_ID.test(id)) throw new Error(`refusing unsafe upload id: ${id}`);
  return id;
}

/** A stored blob whose size disagrees with what was verified at commit: refused, never served. */
export function damaged(digest: string, actual: number, expected: number): RegistryError {
  return new RegistryError(
    'BLOB_UNKNOWN',
    `blob ${digest} is damaged in storage (${actual} bytes stored, ${expected} expected) and is not served; push it again or run fsck`,
    { digest, damaged: true },
  );
}

/** Writes one chunk; settles when the sink is done with it. Marked handled at once, as it may fail before anyone awaits it. */
export function written(sink: Writable, chunk: Buffer): Promise<void> {
  const promise = new Promise<void>((resolve, reject) => {
    sink.write(chunk, (error) => (error ? reject(error) : resolve()));
  });
  promise.catch(() => undefined);
  return promise;
}

/**
 * Runs `work` with `untilClosed`, which races a promise against the sink closing early (a client
 * that hung up may never call back for the chunks it holds).
 */
export async function whileSinkOpen<T>(sink: Writable, work: (untilClosed: <U>(promise: Promise<U>) => Promise<U>) => Promise<T>): Promise<T> {
  let onClose!: () => void;
  const closedEarly = new Promise<never>((_, reject) => {
    onClose = () => reject(new Error('the destination closed before the blob was sent'));
  });
  closedEarly.catch(() => undefined);
  sink.once('close', onClose);
  try {
    return await work((promise) => Promise.race([promise, closedEarly]));
  } finally {
    sink.off('close', onClose);
  }
}
