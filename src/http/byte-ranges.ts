/**
 * RFC 9110 byte ranges for blob GETs: which parts of a blob a `Range` header asks for, and the
 * framing of a `multipart/byteranges` answer. Decisions follow Go's http.ServeContent, which CNCF
 * distribution serves blobs with, so clients that work against distribution (containers-storage's
 * zstd:chunked partial pulls expect one part per requested range, in the order asked) work here:
 *
 * - ranges that start at or past the end are dropped; none left is 416 with `bytes *\/size`;
 * - one range left is an ordinary 206 with Content-Range; several are parts in the order asked,
 *   overlapping or not (parts are never merged: clients match parts to their requests);
 * - more ranges than {@link MAX_RANGES}, or ranges adding up to more bytes than the blob, are
 *   ignored (the whole blob, 200), as Go and nginx's `max_ranges` do: cheap to ask, costly to serve.
 *
 * Where Go differs, RFC 9110 decides: a malformed header or a unit other than `bytes` is ignored
 * (Go answers 416 to the former), and a zero-length suffix (`-0`) is unsatisfiable (Go serves it as
 * a part `bytes size-(size-1)`).
 */
import { randomBytes } from 'node:crypto';
import { RegistryError } from '../registry/errors.js';
import type { ByteRange } from '../registry/ports.js';

/**
 * Most ranges one request may ask for. containers-storage merges the chunks a partial pull
 * misses down to 1024 and asks for them in one request.
 */
export const MAX_RANGES = 1024;

const RANGE_SPEC = /^(\d*)[ \t]*-[ \t]*(\d*)$/;

/**
 * The ranges a `Range` header asks for, in the order asked, or null for the whole blob (no
 * header, one to ignore, or a request not worth serving as parts). Throws RANGE_INVALID (416)
 * when no range overlaps the blob.
 */
export function requestedRanges(header: string | undefined, size: number): ByteRange[] | null {
  if (!header) return null;
  const trimmed = header.trim();
  if (!trimmed.startsWith('bytes=')) return null;
  // An empty element is allowed by the list syntax (`bytes=0-1,,5-6`), and skipped.
  const specs = trimmed.slice('bytes='.length).split(',').map((spec) => spec.trim()).filter((spec) => spec !== '');
  if (specs.length === 0 || specs.length > MAX_RANGES) return null;
  const ranges: ByteRange[] = [];
  for (const spec of specs) {
    const parsed = parseSpec(spec, size);
    if (parsed === 'invalid') return null;
    if (parsed !== 'unsatisfiable') ranges.push(parsed);
  }
  if (ranges.length === 0) throw unsatisfiable(size);
  const total = ranges.reduce((sum, range) => sum + range.end - range.start + 1, 0);
  return total > size ? null : ranges;
}

function parseSpec(spec: string, size: number): ByteRange | 'invalid' | 'unsatisfiable' {
  const match = RANGE_SPEC.exec(spec);
  if (!match) return 'invalid';
  const [, first = '', last = ''] = match;
  if (first === '') {
    if (last === '') return 'invalid';
    const suffix = Number(last);
    // The last N bytes (all of them when the blob is shorter); none of an empty blob.
    if (suffix === 0 || size === 0) return 'unsatisfiable';
    return { start: Math.max(size - suffix, 0), end: size - 1 };
  }
  const start = Number(first);
  if (last !== '' && Number(last) < start) return 'invalid';
  if (start >= size) return 'unsatisfiable';
  return { start, end: last === '' ? size - 1 : Math.min(Number(last), size - 1) };
}

function unsatisfiable(size: number): RegistryError {
  return new RegistryError('RANGE_INVALID', `range not satisfiable for a blob of ${size} bytes`, { size }, {
    headers: { 'Content-Range': `bytes */${size}` },
  });
}

export function contentRange(range: ByteRange, size: number): string {
  return `bytes ${range.start}-${range.end}/${size}`;
}

/** A `multipart/byteranges` body laid out before any byte is read: its headers and each part's framing. */
export interface MultipartLayout {
  /** The response's Content-Type, with the boundary. */
  contentType: string;
  /** The exact body length: framing plus every part's bytes. */
  contentLength: number;
  /** Each part: its range and the delimiter and headers written before its bytes. */
  parts: Array<{ range: ByteRange; head: Buffer }>;
  /** The closing delimiter. */
  tail: Buffer;
}

/**
 * The framing of a multipart/byteranges body, as Go's mime/multipart writes it: a random
 * 60-hex-digit boundary, each part headed by its Content-Range and Content-Type.
 */
export function multipartLayout(ranges: ByteRange[], size: number, partType: string): MultipartLayout {
  const boundary = randomBytes(30).toString('hex');
  const parts = ranges.map((range, index) => {
    const delimiter = `${index === 0 ? '' : '\r\n'}--${boundary}\r\n`;
    const head = Buffer.from(`${delimiter}Content-Range: ${contentRange(range, size)}\r\nContent-Type: ${partType}\r\n\r\n`, 'latin1');
    return { range, head };
  });
  const tail = Buffer.from(`\r\n--${boundary}--\r\n`, 'latin1');
  const contentLength = parts.reduce((sum, part) => sum + part.head.length + part.range.end - part.range.start + 1, tail.length);
  return { contentType: `multipart/byteranges; boundary=${boundary}`, contentLength, parts, tail };
}
