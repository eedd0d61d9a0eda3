/**
 * Which errors of the S3 driver mean "the object store is out of reach or overloaded, try
 * again" (503 with Retry-After) and which mean it answered and refused (never 503): the
 * classification of storage/s3/availability.ts, over the errors the AWS SDK raises.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { HeadObjectCommand, NoSuchKey, NoSuchUpload, NotFound, S3ServiceException } from '@aws-sdk/client-s3';
import { validateConfig } from '../../src/config/load.js';
import { RegistryError } from '../../src/registry/errors.js';
import { isObjectStoreUnavailable, reported, storeError } from '../../src/storage/s3/availability.js';
import { createS3Client } from '../../src/storage/s3/client.js';

/** An error as the SDK builds it from S3's answer. */
function answered(name: string, status: number, fault: 'client' | 'server' = status >= 500 ? 'server' : 'client'): S3ServiceException {
  return new S3ServiceException({ name, $fault: fault, $metadata: { httpStatusCode: status }, message: `${name} (${status})` });
}
const socketError = (code: string) => Object.assign(new Error(`connect ${code} 127.0.0.1:7480`), { code });

describe('object store errors', () => {
  it('counts an unreachable store as unavailable: refused, reset, timed out, unresolvable, wrapped or not', () => {
    for (const code of ['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN']) {
      assert.ok(isObjectStoreUnavailable(socketError(code)), code);
    }
    // The SDK renames socket errors it retries to TimeoutError, and names its own timeouts so.
    assert.ok(isObjectStoreUnavailable(Object.assign(socketError('ECONNRESET'), { name: 'TimeoutError' })));
    assert.ok(isObjectStoreUnavailable(Object.assign(new Error('the request socket did not establish a connection within 2000 ms'), { name: 'TimeoutError' })));
    assert.ok(isObjectStoreUnavailable(new AggregateError([socketError('ECONNREFUSED'), socketError('ECONNREFUSED')], 'connect failed')));
    assert.ok(isObjectStoreUnavailable(new Error('Deserialization error', { cause: socketError('ECONNRESET') })));
  });

  it('counts "overloaded, try again" answers as unavailable: 500, 502, 503 SlowDown, 504, 429, throttling names', () => {
    for (const [name, status] of [
      ['InternalError', 500],
      ['BadGateway', 502],
      ['SlowDown', 503],
      ['ServiceUnavailable', 503],
      ['GatewayTimeout', 504],
      ['TooManyRequests', 429],
      ['Unknown', 503],
      ['RequestTimeout', 400],
      ['SlowDown', 400],
    ] as const) {
      assert.ok(isObjectStoreUnavailable(answered(name, status)), `${status} ${name}`);
    }
  });

  it('does not count refusals as unavailable: 403 AccessDenied, 404 NoSuchKey, other 4xx, 501', () => {
    const refusals = [
      answered('AccessDenied', 403),
      answered('InvalidAccessKeyId', 403),
      answered('SignatureDoesNotMatch', 403),
      new NoSuchKey({ $metadata: { httpStatusCode: 404 }, message: 'The specified key does not exist.' }),
      new NotFound({ $metadata: { httpStatusCode: 404 }, message: 'Not Found' }),
      new NoSuchUpload({ $metadata: { httpStatusCode: 404 }, message: 'The specified upload does not exist.' }),
      answered('NoSuchBucket', 404),
      answered('InvalidRange', 416),
      answered('EntityTooSmall', 400),
      answered('PermanentRedirect', 301),
      answered('NotImplemented', 501),
      new Error('S3 accepted part 3 of upload x without an ETag'),
      new RegistryError('BLOB_UNKNOWN'),
      'not even an error',
      undefined,
    ];
    for (const error of refusals) {
      assert.equal(isObjectStoreUnavailable(error), false, String((error as Error)?.name ?? error));
      assert.equal(reported(error), error, 'passed on unchanged');
    }
  });

  it('reports an unavailable store as 503 with Retry-After in the spec format, keeping the store error as the cause', () => {
    const slowDown = answered('SlowDown', 503);
    const error = reported(slowDown);
    assert.ok(error instanceof RegistryError);
    assert.equal(error.status, 503);
    assert.deepEqual(error.headers, { 'Retry-After': '1' });
    assert.deepEqual(error.toBody(), { errors: [{ code: 'UNKNOWN', message: 'the object store is unavailable; try again shortly' }] });
    assert.equal(error.cause, slowDown);
    assert.equal(storeError(error), slowDown, 'messages naming the setting to fix read the store error');
  });

  it('reports a command against an endpoint nothing listens on as 503, in well under the answer deadline', async () => {
    const { storage } = validateConfig({ storage: { driver: 's3', s3: { bucket: 'b-unit', endpoint: 'http://127.0.0.1:9', accessKey: 'k', secretKey: 's', forcePathStyle: true } } });
    const client = createS3Client(storage.s3);
    try {
      const started = performance.now();
      const error = await client.send(new HeadObjectCommand({ Bucket: 'b-unit', Key: 'blobs/x' })).then(
        () => assert.fail('answered'),
        (failure: unknown) => failure,
      );
      assert.ok(error instanceof RegistryError && error.status === 503, String(error));
      assert.ok(performance.now() - started < 5_000, 'three refused attempts take milliseconds');
    } finally {
      client.destroy();
    }
  });
});
