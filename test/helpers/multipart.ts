/** Reads a multipart/byteranges body (RFC 9110 §14.6, RFC 2046 framing) back into its parts, strictly. */
import assert from 'node:assert/strict';

export interface BodyPart {
  /** Header names lower-cased. */
  headers: Record<string, string>;
  body: Buffer;
}

/** The boundary of a `multipart/byteranges; boundary=…` Content-Type; fails the test for another type. */
export function byterangesBoundary(contentType: string | undefined): string {
  const match = /^multipart\/byteranges;\s*boundary=("?)([^";]+)\1$/i.exec(contentType ?? '');
  assert.ok(match, `expected multipart/byteranges with a boundary, got ${contentType}`);
  return match[2]!;
}

/** The parts of `body`, which must be framed exactly: delimiters, CRLF line ends, a closing delimiter and nothing after. */
export function parseByteranges(contentType: string | undefined, body: Buffer): BodyPart[] {
  const boundary = byterangesBoundary(contentType);
  const delimiter = Buffer.from(`--${boundary}`, 'latin1');
  const parts: BodyPart[] = [];
  // The first delimiter may open the body (Go) or follow a CRLF (RFC 9110's example).
  let offset = body.subarray(0, 2).toString('latin1') === '\r\n' ? 2 : 0;
  assert.ok(body.subarray(offset, offset + delimiter.length).equals(delimiter), 'body does not start with the boundary delimiter');
  for (;;) {
    offset += delimiter.length;
    const after = body.subarray(offset, offset + 2).toString('latin1');
    if (after === '--') {
      assert.equal(body.subarray(offset + 2).toString('latin1').replace(/^\r\n/, ''), '', 'bytes after the closing delimiter');
      return parts;
    }
    assert.equal(after, '\r\n', 'delimiter not followed by CRLF');
    const headerEnd = body.indexOf('\r\n\r\n', offset + 2, 'latin1');
    assert.ok(headerEnd >= 0, 'part headers never end');
    const headers: Record<string, string> = {};
    for (const line of body.subarray(offset + 2, headerEnd).toString('latin1').split('\r\n')) {
      const colon = line.indexOf(':');
      assert.ok(colon > 0, `malformed part header line ${JSON.stringify(line)}`);
      headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
    }
    const start = headerEnd + 4;
    const next = body.indexOf(Buffer.concat([Buffer.from('\r\n', 'latin1'), delimiter]), start);
    assert.ok(next >= 0, 'part never closed by a delimiter');
    parts.push({ headers, body: body.subarray(start, next) });
    offset = next + 2;
  }
}
