/**
 * The `auth` section of the configuration: token authentication (the default) or none, the
 * token service's keys and lifetimes, public repositories, the first admin and login throttling.
 */
import { z } from 'zod';
import { isValidPattern } from './patterns.js';
import { USER_NAME } from './principals.js';

/** A list setting that may also come from one environment variable as `a,b c`. */
function listOf<T extends z.ZodType>(item: T) {
  return z.preprocess((value) => {
    if (typeof value !== 'string') return value;
    const trimmed = value.trim().replace(/^\[(.*)\]$/s, '$1');
    return trimmed === '' ? [] : trimmed.split(/[\s,]+/).filter((entry) => entry !== '');
  }, z.array(item));
}

const repositoryPattern = z.string().refine(isValidPattern, {
  message: 'must be a repository name pattern: name components, `*` for one component, `**` for any depth',
});

const keyFile = z.string().min(1, 'must be a file path');

export const authConfigSchema = z
  .object({
    /** `token`: Docker token authentication. `none`: no authentication at all (everyone may do everything). */
    mode: z.enum(['token', 'none']).default('token'),
    /** The service name: the `service` of challenges and the `aud` of tokens. */
    service: z.string().min(1).default('harbormaster-registry'),
    /** The `iss` of the tokens this registry issues. */
    issuer: z.string().min(1).default('harbormaster-registry'),
    /** Token endpoint announced in challenges; unset: `<http.publicUrl or request origin>/auth/token`. */
    realm: z.url({ protocol: /^https?$/, error: 'must be an http(s) URL' }).optional(),
    /** Repository patterns anyone, even without credentials, may pull. */
    publicRepositories: listOf(repositoryPattern).default([]),
    /** Name of the admin created on first start when there are no users. */
    adminUsername: z.string().regex(USER_NAME, 'must be lowercase letters, digits, `.`, `_` or `-`').default('admin'),
    /** Password of that first admin (REGISTRY_ADMIN_PASSWORD); unset: generated and printed once. */
    adminPassword: z.string().min(8, 'must be at least 8 characters').optional(),
    token: z
      .object({
        /** Signature algorithm of a generated signing key (a configured key decides by its type). */
        algorithm: z.enum(['ES256', 'RS256']).default('ES256'),
        /** Lifetime of issued access tokens, in seconds. */
        ttlSeconds: z.number().int().min(60).max(86_400).default(300),
        /** Clock skew tolerated when checking `exp` and `nbf`, in seconds. */
        leewaySeconds: z.number().int().min(0).max(600).default(30),
        /** PEM private key file to sign with; unset: `<storage.root>/auth/token-signing-key.pem`, generated on first start. */
        signingKey: keyFile.optional(),
        /** More PEM public keys or certificates whose tokens are accepted (key rotation). */
        trustedKeys: listOf(keyFile).default([]),
        /** Lifetime of refresh tokens (`offline_token`, `access_type=offline`), in seconds. */
        refreshTtlSeconds: z.number().int().min(60).default(30 * 86_400),
      })
      .strict()
      .prefault({}),
    /**
     * Trust tokens from an external token service instead of issuing them: challenges point at
     * its realm and the built-in token endpoint is off. Local users still manage /api/v1.
     */
    external: z
      .object({
        /** The external service's `iss`. */
        issuer: z.string().min(1),
        /** Its token endpoint URL, announced in challenges. */
        realm: z.url({ protocol: /^https?$/, error: 'must be an http(s) URL' }),
        /** PEM public keys or certificates it signs with. */
        keys: listOf(keyFile).refine((keys) => keys.length > 0, 'at least one key file is required'),
      })
      .strict()
      .optional(),
    /**
     * Seconds a verified user password is remembered (as a keyed hash, never the password), so
     * Basic credentials sent with every request cost one scrypt per period; 0: never remembered.
     */
    passwordCacheSeconds: z.number().int().min(0).max(3600).default(60),
    throttle: z
      .object({
        /** Failed logins allowed per account within the window before further attempts get 429. */
        maxFailuresPerAccount: z.number().int().positive().default(5),
        /** Failed logins allowed per client address within the window. */
        maxFailuresPerAddress: z.number().int().positive().default(20),
        /** The window, in seconds: a failure older than this no longer counts. */
        windowSeconds: z.number().int().positive().default(300),
        /**
         * Accounts and addresses tracked at most (about 0.5 KiB each). Locked ones are
         * never dropped to make room: when all are locked, new ones are refused until some expire.
         */
        maxTrackedKeys: z.number().int().min(100).default(50_000),
        /** Password hashes (scrypt) computed at once; libuv's 4 I/O threads are shared with file reads and writes. */
        maxConcurrentPasswordChecks: z.number().int().min(1).max(16).default(2),
        /** Logins waiting for a hash slot; beyond this they get 429 at once. */
        maxQueuedPasswordChecks: z.number().int().min(0).default(32),
      })
      .strict()
      .prefault({}),
  })
  .strict()
  .prefault({});

export type AuthConfig = z.infer<typeof authConfigSchema>;
