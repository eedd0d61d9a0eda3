/**
 * The auth service: checks credentials (throttled, audited), resolves token subjects to live
 * accounts, decides what they may do, and hands out access and refresh tokens. The HTTP
 * layer (auth middleware, token endpoint, admin API) is a thin shell around it.
 */
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import type { Logger } from 'pino';
import { AccessPolicy, type AccountRef, type AccountStore, type RobotRecord, type UserRecord } from './accounts.js';
import type { AuthConfig } from './config.js';
import { isExposed, loadOrCreateSigningKey, loadSigningKey, loadVerificationKey, type SigningKey } from './keys.js';
import { compilePattern, type RepositoryPattern } from './patterns.js';
import { ANONYMOUS, parseLogin, USER_NAME, type Principal } from './principals.js';
import type { ResourceScope } from './scopes.js';
import { generateSecret, hashSecret, secretMatches, verifyPassword } from './secrets.js';
import { VerifiedPasswords } from './password-cache.js';
import { PasswordCheckLimiter, PasswordChecksBusy } from './password-checks.js';
import { isRefusal, MemoryLoginThrottle, type AttemptOutcome, type LoginKeys, type LoginThrottle } from './throttle.js';
import { TokenService, type TrustedIssuer } from './tokens.js';

/** Credentials were wrong, expired or revoked. `reason` is for the audit log only. */
export class LoginFailed extends Error {
  constructor(readonly reason: string) {
    super('invalid credentials');
    this.name = 'LoginFailed';
  }
}

/** Too many recent failures for this account or address, or (`busy`) too many password checks in progress. */
export class LoginThrottled extends Error {
  constructor(
    readonly retryAfterSeconds: number,
    readonly busy = false,
  ) {
    super(busy ? 'too many password checks in progress' : `too many failed logins; retry in ${retryAfterSeconds} s`);
    this.name = 'LoginThrottled';
  }
}

export interface AuthServiceOptions {
  config: AuthConfig;
  store: AccountStore;
  tokens: TokenService;
  logger: Logger;
  now?: () => number;
  /** Where login attempts are counted; default: in this process's memory. */
  throttle?: LoginThrottle;
}

const REFRESH_TOKEN_PREFIX = 'rt1';
/** Compared against when a robot does not exist, so that unknown names cost what known ones do. */
const DECOY_SECRET_DIGEST = hashSecret(generateSecret());

export class AuthService {
  readonly config: AuthConfig;
  readonly store: AccountStore;
  readonly tokens: TokenService;
  readonly throttle: LoginThrottle;
  readonly now: () => number;
  readonly passwordChecks: PasswordCheckLimiter;
  private readonly verifiedPasswords: VerifiedPasswords;
  private readonly logger: Logger;
  private readonly publicRepositories: RepositoryPattern[];

  constructor(options: AuthServiceOptions) {
    this.config = options.config;
    this.store = options.store;
    this.tokens = options.tokens;
    this.logger = options.logger;
    this.now = options.now ?? Date.now;
    this.throttle = options.throttle ?? new MemoryLoginThrottle(options.config.throttle, this.now, saturationWarning(this.logger));
    this.publicRepositories = options.config.publicRepositories.map(compilePattern);
    const { maxConcurrentPasswordChecks: concurrency, maxQueuedPasswordChecks: maxQueued } = options.config.throttle;
    this.passwordChecks = new PasswordCheckLimiter({ concurrency, maxQueued });
    this.verifiedPasswords = new VerifiedPasswords(this.store, options.config.passwordCacheSeconds * 1000, this.now);
  }

  /** The service name clients ask tokens for (`aud`). */
  get service(): string {
    return this.tokens.service;
  }

  /**
   * Checks a login name and password (a robot's secret for `robot+<name>`). The attempt is
   * reserved against the account and the address before anything is checked, so concurrent
   * guesses cannot outrun the limits; every failure is logged for audit, without the secret.
   * A user password verified within `auth.passwordCacheSeconds` is not hashed again, but a
   * locked account or address is refused all the same.
   */
  async login(login: string, password: string, address: string): Promise<Principal> {
    const account = login.slice(0, 128);
    const keys = { account, address };
    const remembered = USER_NAME.test(account) ? await this.verifiedPasswords.recall(account, password) : null;
    if (remembered) {
      const wait = await this.throttle.retryAfter(keys);
      if (wait > 0) {
        this.audit(account, address, 'throttled');
        throw new LoginThrottled(wait);
      }
      return userPrincipal(remembered)!;
    }
    return this.throttled(keys, () => this.checkPassword(account, password));
  }

  /**
   * Runs a credential check under the throttle: refused at once (429) when the account or the
   * address is at its limit, otherwise counted as a failure unless it succeeds.
   */
  private async throttled(keys: LoginKeys, check: () => Promise<Principal>): Promise<Principal> {
    const reservation = await this.throttle.reserve(keys);
    if (isRefusal(reservation)) {
      this.audit(keys.account, keys.address, 'throttled');
      throw new LoginThrottled(reservation.retryAfterSeconds);
    }
    let outcome: AttemptOutcome = 'released';
    try {
      const principal = await check();
      outcome = 'succeeded';
      this.logger.debug({ audit: 'authenticated', account: keys.account, address: keys.address }, 'authenticated');
      return principal;
    } catch (error) {
      if (error instanceof LoginFailed) {
        outcome = 'failed';
        this.audit(keys.account, keys.address, error.reason);
      }
      if (error instanceof PasswordChecksBusy) {
        this.audit(keys.account, keys.address, 'too many password checks in progress');
        throw new LoginThrottled(1, true);
      }
      throw error;
    } finally {
      await this.throttle.settle(reservation, outcome);
    }
  }

  private async checkPassword(login: string, password: string): Promise<Principal> {
    const { kind, name } = parseLogin(login);
    if (kind === 'robot') {
      const robot = USER_NAME.test(name) ? await this.store.getRobot(name) : null;
      const matches = secretMatches(password, robot?.secretHash ?? DECOY_SECRET_DIGEST);
      if (!robot || !matches) throw new LoginFailed(robot ? 'wrong robot secret' : 'unknown robot');
      if (robot.revokedAt !== null) throw new LoginFailed('robot revoked');
      if (robot.expiresAt !== null && robot.expiresAt <= this.now()) throw new LoginFailed('robot expired');
      return this.robotPrincipal(robot)!;
    }
    const user = USER_NAME.test(name) ? await this.store.getUser(name) : null;
    // The hash is computed even for unknown users, so timing does not tell which names exist.
    const ok = await this.passwordChecks.run(() => verifyPassword(password, user?.passwordHash ?? null));
    if (!user || !ok) throw new LoginFailed(user ? 'wrong password' : 'unknown user');
    this.verifiedPasswords.remember(user, password);
    return userPrincipal(user)!;
  }

  /**
   * The live account behind a token this registry issued, or null when it no longer exists, may
   * no longer log in, or is not the account instance the token was issued to (`acct`): a user
   * deleted and re-created, or a robot revoked and re-created, under the same name.
   */
  async principalForToken(subject: string, account: string | null): Promise<Principal | null> {
    if (subject === '') return ANONYMOUS;
    const { kind, name } = parseLogin(subject);
    if (!USER_NAME.test(name) || !account) return null;
    const principal = kind === 'robot' ? this.robotPrincipal(await this.store.getRobot(name)) : userPrincipal(await this.store.getUser(name));
    return principal?.instance === account ? principal : null;
  }

  private robotPrincipal(robot: RobotRecord | null): Principal | null {
    if (!robot || robot.revokedAt !== null || (robot.expiresAt !== null && robot.expiresAt <= this.now())) return null;
    return { kind: 'robot', id: robot.id, instance: robot.instance, name: robot.name, admin: false };
  }

  async policyFor(principal: Principal): Promise<AccessPolicy> {
    const grants = principal.kind === 'anonymous' ? [] : await this.store.listGrants(refOf(principal));
    return new AccessPolicy(principal, grants, this.publicRepositories);
  }

  /** The intersection of what was asked and what the principal may do (asking for more is no error). */
  async grantedAccess(principal: Principal, requested: readonly ResourceScope[]): Promise<ResourceScope[]> {
    const policy = await this.policyFor(principal);
    return requested.map((scope) => policy.grant(scope)).filter((scope): scope is ResourceScope => scope !== null);
  }

  /** Issues a refresh token (`offline_token`) for the principal and this service. */
  async issueRefreshToken(principal: Principal): Promise<string> {
    if (principal.kind === 'anonymous') throw new Error('anonymous callers get no refresh token');
    const id = randomBytes(12).toString('base64url');
    const secret = generateSecret();
    const now = this.now();
    await this.store.deleteExpiredRefreshTokens(now);
    await this.store.createRefreshToken({
      id,
      owner: refOf(principal),
      ownerInstance: principal.instance,
      service: this.service,
      secretHash: hashSecret(secret),
      createdAt: now,
      expiresAt: now + this.config.token.refreshTtlSeconds * 1000,
    });
    return `${REFRESH_TOKEN_PREFIX}.${id}.${secret}`;
  }

  /** Redeems a refresh token for its (still valid) account. Throttled and audited like a password. */
  async redeemRefreshToken(token: string, address: string): Promise<Principal> {
    return this.throttled({ account: null, address }, () => this.checkRefreshToken(token));
  }

  private async checkRefreshToken(token: string): Promise<Principal> {
    const [prefix, id, secret] = token.split('.');
    if (prefix !== REFRESH_TOKEN_PREFIX || !id || !secret) throw new LoginFailed('malformed refresh token');
    const record = await this.store.getRefreshToken(id);
    if (!record || !secretMatches(secret, record.secretHash)) throw new LoginFailed('unknown refresh token');
    if (record.expiresAt <= this.now()) {
      await this.store.deleteRefreshToken(id);
      throw new LoginFailed('refresh token expired');
    }
    if (record.service !== this.service) throw new LoginFailed('refresh token issued for another service');
    const principal =
      record.owner.kind === 'user'
        ? userPrincipal(await this.store.getUserById(record.owner.id))
        : this.robotPrincipal(await this.store.getRobotById(record.owner.id));
    if (!principal) throw new LoginFailed('refresh token of a removed or revoked account');
    if (principal.instance !== record.ownerInstance) throw new LoginFailed('refresh token of an earlier account of the same name');
    return principal;
  }

  /** Logs a failed authentication for audit: account, client address and reason, never the secret. */
  audit(account: string | null, address: string, reason: string): void {
    this.logger.warn({ audit: 'authentication-failed', account, address, reason }, 'authentication failed');
  }
}

/** Logs, at most once a minute, that the throttle is full of locked keys and refuses new ones. */
function saturationWarning(logger: Logger): () => void {
  let last = -Infinity;
  return () => {
    const now = Date.now();
    if (now - last < 60_000) return;
    last = now;
    logger.warn(
      { audit: 'throttle-saturated' },
      'login throttle is full of locked accounts and addresses (auth.throttle.maxTrackedKeys): logins for ones not yet tracked are refused until some expire; a distributed guessing attack is likely',
    );
  };
}

function userPrincipal(user: UserRecord | null): Principal | null {
  return user ? { kind: 'user', id: user.id, instance: user.instance, name: user.name, admin: user.role === 'admin' } : null;
}

export function refOf(principal: Principal): AccountRef {
  if (principal.kind === 'anonymous') throw new Error('the anonymous caller has no account');
  return { kind: principal.kind, id: principal.id };
}

export interface TokenKeysOptions {
  config: AuthConfig;
  /** The storage root, where a generated signing key lives. */
  root: string;
  logger: Logger;
  now?: () => number;
  /**
   * Where a signing key comes from when `token.signingKey` names no file: the one generated
   * under the storage root (one process), or one every replica shares (the database's).
   */
  sharedKey?: () => Promise<SigningKey>;
}

/** Default place of the generated signing key under the storage root. */
export function defaultSigningKeyFile(root: string): string {
  return path.join(root, 'auth', 'token-signing-key.pem');
}

/**
 * Builds the token service from configuration: with `external`, only that service's keys are
 * trusted and nothing is issued; otherwise the signing key (configured, or generated on first
 * start) signs, and its public key plus `token.trustedKeys` verify.
 */
export async function createTokenService({ config, root, logger, now, sharedKey }: TokenKeysOptions): Promise<TokenService> {
  const common = { service: config.service, ttlSeconds: config.token.ttlSeconds, leewaySeconds: config.token.leewaySeconds, now };
  if (config.external) {
    const trusted: TrustedIssuer = { issuer: config.external.issuer, keys: config.external.keys.map(loadVerificationKey), origin: 'external' };
    return new TokenService({ ...common, trusted: [trusted] });
  }
  let key: SigningKey;
  const file = config.token.signingKey ?? defaultSigningKeyFile(root);
  if (config.token.signingKey) {
    key = loadSigningKey(file);
    if (isExposed(file)) logger.warn({ file }, 'token signing key file is readable by group or others; chmod 600 it');
  } else if (sharedKey) {
    key = await sharedKey();
  } else {
    const loaded = loadOrCreateSigningKey(file, config.token.algorithm);
    key = loaded.key;
    if (loaded.created) logger.info({ file, kid: key.kid, algorithm: key.algorithm }, 'generated token signing key');
    if (isExposed(file)) logger.warn({ file }, 'token signing key file is readable by group or others; chmod 600 it');
  }
  const extra = config.token.trustedKeys.map(loadVerificationKey);
  const trusted: TrustedIssuer = { issuer: config.issuer, keys: [key, ...extra], origin: 'local' };
  return new TokenService({ ...common, signing: { issuer: config.issuer, key }, trusted: [trusted] });
}
