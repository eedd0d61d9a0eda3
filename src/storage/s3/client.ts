/**
 * The S3 clients of the driver, built from `storage.s3.*` with every command bounded in time
 * and an unreachable store reported as 503 (availability.ts), and how S3's answers read as
 * messages that name the setting to fix.
 */
import http from 'node:http';
import https from 'node:https';
import { S3Client, S3ServiceException } from '@aws-sdk/client-s3';
import type { S3Settings, StorageConfig } from '../../config/storage.js';
import { envName } from '../../config/load.js';
import { boundCommands, CONNECT_TIMEOUT_MS, storeError } from './availability.js';

/** Sockets kept open to the object store: pulls and pushes in flight each hold one. */
const MAX_SOCKETS = 256;

// The SDK warns on Node 20 about releases to come; this one is pinned, so the warning only adds noise to every start.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

export function createS3Client(settings: S3Settings, endpoint = settings.endpoint): S3Client {
  const client = new S3Client({
    region: settings.region,
    endpoint,
    forcePathStyle: settings.forcePathStyle,
    credentials:
      settings.accessKey !== undefined && settings.secretKey !== undefined
        ? { accessKeyId: settings.accessKey, secretAccessKey: settings.secretKey }
        : undefined,
    // S3-compatible servers (radosgw, MinIO, older ones) do not all know the newer default checksums.
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
    // Retried by the SDK, with backoff (50 ms doubling, 1 s doubling when throttled), within the bounds of availability.ts.
    maxAttempts: 3,
    requestHandler: {
      httpAgent: new http.Agent({ keepAlive: true, maxSockets: MAX_SOCKETS }),
      httpsAgent: new https.Agent({ keepAlive: true, maxSockets: MAX_SOCKETS }),
      connectionTimeout: CONNECT_TIMEOUT_MS,
      // The per-command answer times of availability.ts fail the attempt (without this the SDK only warns).
      throwOnRequestTimeout: true,
    },
  });
  return boundCommands(client);
}

/** The client presigned URLs are made with: the public endpoint when clients reach the store elsewhere. */
export function createPresignClient(storage: StorageConfig): S3Client {
  return createS3Client(storage.s3, storage.redirect.publicEndpoint ?? storage.s3.endpoint);
}

export function isNotFound(error: unknown): boolean {
  return error instanceof S3ServiceException && (error.$metadata.httpStatusCode === 404 || error.name === 'NoSuchKey' || error.name === 'NotFound');
}

/** S3's answer in a few words: `404 NoSuchBucket`, or the network error's code. */
export function s3Answer(error: unknown): string {
  if (error instanceof S3ServiceException) {
    const status = error.$metadata.httpStatusCode;
    const name = error.name === 'Unknown' || error.name === 'UnknownError' ? '' : ` ${error.name}`;
    const message = error.message && error.message !== error.name && error.message !== 'UnknownError' ? `: ${error.message}` : '';
    return `${status ?? '?'}${name}${message}`;
  }
  const code = (error as NodeJS.ErrnoException)?.code;
  return code ? `${code} (${(error as Error).message})` : String((error as Error)?.message ?? error);
}

/**
 * Why the bucket cannot be used, naming the setting to look at: the endpoint when nothing
 * answers, the credentials when S3 refuses them, the bucket when it is missing, the region
 * when S3 redirects elsewhere.
 */
export function describeBucketProblem(settings: S3Settings, reportedError: unknown): string {
  const error = storeError(reportedError);
  const where = `bucket "${settings.bucket}" at ${settings.endpoint ?? `AWS (${settings.region})`}`;
  const setting = (...keys: string[]) => keys.map((key) => `storage.s3.${key} (${envName(['storage', 's3', key])})`).join(' / ');
  const answer = s3Answer(error);
  if (!(error instanceof S3ServiceException)) return `${setting('endpoint')}: cannot reach ${where}: ${answer}`;
  const status = error.$metadata.httpStatusCode;
  if (status === 404) return `${setting('bucket')}: ${where} does not exist (create it first): S3 answered ${answer}`;
  if (status === 403 || status === 401) return `${setting('accessKey', 'secretKey')}: S3 refused access to ${where}: S3 answered ${answer}`;
  if (status === 301 || status === 307 || error.name === 'PermanentRedirect' || error.name === 'AuthorizationHeaderMalformed') {
    return `${setting('region')}: ${where} is in another region: S3 answered ${answer}`;
  }
  return `${setting('bucket')}: ${where} cannot be used: S3 answered ${answer}`;
}
