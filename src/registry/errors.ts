/**
 * The one error type of the registry. Domain code throws a RegistryError carrying an
 * OCI / Docker error code; the HTTP error middleware alone turns it into a status and the
 * spec's body `{"errors":[{"code","message","detail"}]}`.
 */

/** Every error code the registry speaks, with its default HTTP status and message. */
export const ERROR_CODES = {
  BLOB_UNKNOWN: { status: 404, message: 'blob unknown to registry' },
  BLOB_UPLOAD_INVALID: { status: 400, message: 'blob upload invalid' },
  BLOB_UPLOAD_UNKNOWN: { status: 404, message: 'blob upload unknown to registry' },
  DIGEST_INVALID: { status: 400, message: 'provided digest did not match uploaded content' },
  MANIFEST_BLOB_UNKNOWN: { status: 400, message: 'manifest references a manifest or blob unknown to registry' },
  MANIFEST_INVALID: { status: 400, message: 'manifest invalid' },
  MANIFEST_UNKNOWN: { status: 404, message: 'manifest unknown to registry' },
  NAME_INVALID: { status: 400, message: 'invalid repository name' },
  NAME_UNKNOWN: { status: 404, message: 'repository name not known to registry' },
  SIZE_INVALID: { status: 400, message: 'provided length did not match content length' },
  TAG_INVALID: { status: 400, message: 'manifest tag did not match URI' },
  PAGINATION_NUMBER_INVALID: { status: 400, message: 'invalid number of results requested' },
  RANGE_INVALID: { status: 416, message: 'requested range not satisfiable' },
  UNAUTHORIZED: { status: 401, message: 'authentication required' },
  DENIED: { status: 403, message: 'requested access to the resource is denied' },
  UNSUPPORTED: { status: 405, message: 'the operation is unsupported' },
  TOOMANYREQUESTS: { status: 429, message: 'too many requests' },
  UNKNOWN: { status: 500, message: 'unknown error' },
  // As GitLab's registry: deleting a manifest an index of the same repository still lists.
  MANIFEST_REFERENCED: { status: 409, message: 'manifest is referenced by an index' },
  // Beyond the distribution spec: the registry's own JSON APIs (token endpoint, /api/v1).
  INVALID_REQUEST: { status: 400, message: 'the request is invalid' },
  NOT_FOUND: { status: 404, message: 'no such resource' },
  CONFLICT: { status: 409, message: 'the request conflicts with the current state' },
} as const satisfies Record<string, { status: number; message: string }>;

export type ErrorCode = keyof typeof ERROR_CODES;

export interface RegistryErrorOptions {
  /** Overrides the code's default status where the spec asks for another (413, 416). */
  status?: number;
  /** Extra response headers the client needs to act on the error (Range, Retry-After, …). */
  headers?: Record<string, string>;
  cause?: unknown;
}

export class RegistryError extends Error {
  readonly code: ErrorCode;
  readonly detail: unknown;
  readonly status: number;
  readonly headers: Record<string, string>;

  constructor(code: ErrorCode, message?: string, detail?: unknown, options: RegistryErrorOptions = {}) {
    super(message ?? ERROR_CODES[code].message, { cause: options.cause });
    this.name = 'RegistryError';
    this.code = code;
    this.detail = detail;
    this.status = options.status ?? ERROR_CODES[code].status;
    this.headers = options.headers ?? {};
  }

  /** The spec's JSON error body. */
  toBody(): { errors: Array<{ code: ErrorCode; message: string; detail?: unknown }> } {
    const entry: { code: ErrorCode; message: string; detail?: unknown } = { code: this.code, message: this.message };
    if (this.detail !== undefined) entry.detail = this.detail;
    return { errors: [entry] };
  }
}

export function isRegistryError(error: unknown): error is RegistryError {
  return error instanceof RegistryError;
}

/**
 * A state that passes (a backend out of reach or overloaded, a digest being collected): 503
 * with `Retry-After: 1`, which Docker, containerd and skopeo retry, where a 500 makes them give
 * up and tells operators the registry has a bug.
 */
export function retryShortly(message: string, detail?: unknown, cause?: unknown): RegistryError {
  return new RegistryError('UNKNOWN', message, detail, { status: 503, headers: { 'Retry-After': '1' }, cause });
}

/** Whether `error` is one of {@link retryShortly}'s: the request may succeed if tried again in a moment. */
export function isRetryShortly(error: unknown): error is RegistryError {
  return error instanceof RegistryError && error.status === 503;
}
