/** Range header parsing and multipart/byteranges framing (src/http/byte-ranges.ts). */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MAX_RANGES, multipartLayout, requestedRanges } from '../../src/http/byte-ranges.js';
import { isRegistryError } from '../../src/registry/errors.js';
import { parseByteranges } from '../helpers/multipart.js';

function status416(header: string, size: number): void {
  assert.throws(
    () => requestedRanges(header, size),
    (error: unknown) => isRegistryError(error) && error.status === 416 && error.headers['Content-Range'] === `bytes */${size}`,
  );
}

describe('requestedRanges', () => {
  it('reads single, open, suffix and clamped ranges', () => {
    assert.deepEqual(requestedRanges('bytes=2-5', 20), [{ start: 2, end: 5 }]);
    assert.deepEqual(requestedRanges('bytes=15-', 20), [{ start: 15, end: 19 }]);
    assert.deepEqual(requestedRanges('bytes=-3', 20), [{ start: 17, end: 19 }]);
    assert.deepEqual(requestedRanges('bytes=-300', 20), [{ start: 0, end: 19 }]);
    assert.deepEqual(requestedRanges('bytes=18-99999999999999999999', 20), [{ start: 18, end: 19 }]);
  });

  it('keeps several ranges in the order asked, overlapping ones too', () => {
    assert.deepEqual(requestedRanges('bytes=10-11, 0-4 ,2-3', 20), [
      { start: 10, end: 11 },
      { start: 0, end: 4 },
      { start: 2, end: 3 },
    ]);
  });

  it('ignores (whole blob) no header, another unit, a malformed one, too many ranges, or more bytes than the blob', () => {
    for (const header of [undefined, '', 'items=0-1', 'bytes=', 'bytes=5-2', 'bytes=0-1,x', 'bytes=1', 'bytes=--1', 'bytes=0-0,-']) {
      assert.equal(requestedRanges(header, 20), null, String(header));
    }
    assert.equal(requestedRanges(`bytes=${Array(MAX_RANGES + 1).fill('0-0').join(',')}`, 20), null);
    assert.equal(requestedRanges(`bytes=${Array(MAX_RANGES).fill('0-0').join(',')}`, 2000)?.length, MAX_RANGES);
    assert.equal(requestedRanges('bytes=0-10,5-15', 20), null);
  });

  it('drops ranges that cannot overlap, and answers 416 when none is left', () => {
    assert.deepEqual(requestedRanges('bytes=20-30,-0,1-1', 20), [{ start: 1, end: 1 }]);
    status416('bytes=20-', 20);
    status416('bytes=-0', 20);
    status416('bytes=0-,-5', 0);
  });
});

describe('multipartLayout', () => {
  it('frames parts as Go does, with an exact Content-Length', () => {
    const blob = Buffer.from('0123456789');
    const ranges = [
      { start: 1, end: 2 },
      { start: 8, end: 9 },
    ];
    const layout = multipartLayout(ranges, blob.length, 'application/octet-stream');
    const boundary = /boundary=([0-9a-f]{60})$/.exec(layout.contentType)?.[1];
    assert.ok(boundary, layout.contentType);
    const body = Buffer.concat([...layout.parts.flatMap((part) => [part.head, blob.subarray(part.range.start, part.range.end + 1)]), layout.tail]);
    assert.equal(layout.contentLength, body.length);
    assert.ok(body.toString('latin1').startsWith(`--${boundary}\r\nContent-Range: bytes 1-2/10\r\nContent-Type: application/octet-stream\r\n\r\n12\r\n--${boundary}\r\n`));
    assert.deepEqual(
      parseByteranges(layout.contentType, body).map((part) => [part.headers['content-range'], part.body.toString()]),
      [
        ['bytes 1-2/10', '12'],
        ['bytes 8-9/10', '89'],
      ],
    );
  });
});
