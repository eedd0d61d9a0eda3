/**
 * Bearer tokens: JWTs as jwt.md specifies them, signed with an asymmetric key (ES256 or
 * RS256) whose libtrust `kid` is in the header. Verification picks the trusted key by `kid`,
 * pins its algorithm (never `none`, never HMAC), and checks issuer, audience, `exp` and `nbf`
 * with a small clock-skew leeway.
 */
import { randomBytes } from 'node:crypto';
import jwt from 'jsonwebtoken';
import { z } from 'zod';
import type { SigningKey, VerificationKey } from './keys.js';
import type { ResourceScope } from './scopes.js';
import { BoundedMap } from '../runtime/bounded-map.js';

/** A source of tokens the registry accepts: its issuer and the keys it signs with. */
export interface TrustedIssuer {
  issuer: string;
  keys: VerificationKey[];
  /** `local`: issued by this registry, whose subjects are its own accounts. */
  origin: 'local' | 'external';
}

export interface IssuedToken {
  token: string;
  /** Seconds the token is valid for. */
  expiresIn: number;
  /** RFC 3339 time of issue. */
  issuedAt: string;
}

export interface VerifiedToken {
  subject: string;
  /** `acct`: the account instance the token was issued to (tokens of this registry); null when absent. */
  account: string | null;
  issuer: string;
  origin: 'local' | 'external';
  access: ResourceScope[];
  jti: string;
  expiresAt: number;
}

/** Why a token was refused (for the audit log; the client only learns "invalid_token"). */
export class TokenError extends Error {
  constructor(
    readonly reason: string,
    /** The unverified `sub`, when the token could be decoded at all. */
    readonly subject: string | null = null,
  ) {
    super(reason);
    this.name = 'TokenError';
  }
}

const accessSchema = z
  .array(
    z.object({
      type: z.string(),
      name: z.string(),
      actions: z.array(z.string()).max(32),
    }),
  )
  .max(256);

const claimsSchema = z.object({
  iss: z.string(),
  sub: z.string(),
  aud: z.union([z.string(), z.array(z.string())]),
  exp: z.number(),
  iat: z.number().optional(),
  nbf: z.number().optional(),
  jti: z.string().optional(),
  acct: z.string().max(128).optional(),
  access: accessSchema.optional(),
});

export interface TokenServiceOptions {
  /** The registry's service name: `aud` of issued tokens and the audience required of every token. */
  service: string;
  /** Lifetime of issued tokens, in seconds. */
  ttlSeconds: number;
  leewaySeconds: number;
  /** Signs tokens; absent when an external service issues them. */
  signing?: { issuer: string; key: SigningKey };
  trusted: TrustedIssuer[];
  now?: () => number;
}

/** Tokens whose signature was already checked, so a client's every request skips the crypto. */
const VERIFIED_CACHE_SIZE = 10_000;

export class TokenService {
  private readonly keysById = new Map<string, { key: VerificationKey; issuer: TrustedIssuer }>();
  private readonly now: () => number;
  private readonly verified = new BoundedMap<string, VerifiedToken>(VERIFIED_CACHE_SIZE);

  constructor(private readonly options: TokenServiceOptions) {
    this.now = options.now ?? Date.now;
    for (const issuer of options.trusted) {
      for (const key of issuer.keys) this.keysById.set(key.kid, { key, issuer });
    }
  }

  get service(): string {
    return this.options.service;
  }

  /** The key tokens are signed with; undefined when an external service issues them. */
  get signingKey(): SigningKey | undefined {
    return this.options.signing?.key;
  }

  /** Whether this registry issues tokens itself (the built-in token endpoint is on). */
  get issuing(): boolean {
    return this.options.signing !== undefined;
  }

  /**
   * Signs a token for `subject` with exactly the given access, bound to the account instance
   * `account` (claim `acct`; omitted for anonymous tokens).
   */
  issue(subject: string, access: ResourceScope[], account?: string): IssuedToken {
    const signing = this.options.signing;
    if (!signing) throw new Error('this registry does not issue tokens (an external token service does)');
    const nowMs = this.now();
    const now = Math.floor(nowMs / 1000);
    const payload = {
      iss: signing.issuer,
      sub: subject,
      aud: this.options.service,
      exp: now + this.options.ttlSeconds,
      nbf: now,
      iat: now,
      jti: randomBytes(16).toString('base64url'),
      ...(account ? { acct: account } : {}),
      access,
    };
    const token = jwt.sign(payload, signing.key.privateKey, {
      algorithm: signing.key.algorithm,
      keyid: signing.key.kid,
      header: { typ: 'JWT', alg: signing.key.algorithm, kid: signing.key.kid },
    });
    return { token, expiresIn: this.options.ttlSeconds, issuedAt: new Date(now * 1000).toISOString() };
  }

  /**
   * Verifies a token (signature, algorithm, issuer, audience, times). A token verified before
   * is answered from a bounded cache, its expiry still checked on every call: the signature of
   * a given string cannot change, but time moves on.
   */
  verify(token: string): VerifiedToken {
    const cached = this.verified.get(token);
    if (cached) {
      const clock = Math.floor(this.now() / 1000);
      if (clock < cached.expiresAt / 1000 + this.options.leewaySeconds) return cached;
      this.verified.delete(token);
      throw new TokenError('token expired', cached.subject);
    }
    const result = this.verifyUncached(token);
    this.verified.set(token, result);
    return result;
  }

  private verifyUncached(token: string): VerifiedToken {
    const decoded = jwt.decode(token, { complete: true });
    if (!decoded || typeof decoded.payload === 'string') throw new TokenError('malformed token');
    const unverifiedSubject = typeof decoded.payload.sub === 'string' ? decoded.payload.sub : null;
    const kid = decoded.header.kid;
    if (typeof kid !== 'string') throw new TokenError('token has no kid', unverifiedSubject);
    const trusted = this.keysById.get(kid);
    if (!trusted) throw new TokenError(`token signed by an untrusted key (kid ${kid})`, unverifiedSubject);
    if (decoded.header.alg !== trusted.key.algorithm) {
      throw new TokenError(`token algorithm ${String(decoded.header.alg)} does not match its key (${trusted.key.algorithm})`, unverifiedSubject);
    }
    let payload: jwt.JwtPayload;
    try {
      payload = jwt.verify(token, trusted.key.publicKey, {
        algorithms: [trusted.key.algorithm],
        issuer: trusted.issuer.issuer,
        audience: this.options.service,
        clockTolerance: this.options.leewaySeconds,
        clockTimestamp: Math.floor(this.now() / 1000),
      }) as jwt.JwtPayload;
    } catch (error) {
      throw new TokenError(describeJwtError(error), unverifiedSubject);
    }
    const claims = claimsSchema.safeParse(payload);
    if (!claims.success) throw new TokenError('token claims are malformed', unverifiedSubject);
    return {
      subject: claims.data.sub,
      account: claims.data.acct ?? null,
      issuer: claims.data.iss,
      origin: trusted.issuer.origin,
      access: claims.data.access ?? [],
      jti: claims.data.jti ?? '',
      expiresAt: claims.data.exp * 1000,
    };
  }
}

function describeJwtError(error: unknown): string {
  if (error instanceof jwt.TokenExpiredError) return 'token expired';
  if (error instanceof jwt.NotBeforeError) return 'token not yet valid';
  if (error instanceof jwt.JsonWebTokenError) return `invalid token: ${error.message}`;
  return 'invalid token';
}
