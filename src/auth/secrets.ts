/**
 * Password hashing (scrypt, memory-hard) and the random secrets the registry hands out
 * (robot secrets, refresh tokens). Every comparison is constant-time.
 */
import { createHash, randomBytes, scrypt, timingSafeEqual, type ScryptOptions } from 'node:crypto';

/** scrypt cost: N = 2^15, r = 8, p = 1 (32 MiB per hash). Stored with each hash, so it can be raised later. */
const SCRYPT = { N: 32_768, r: 8, p: 1 } as const;
const KEY_LENGTH = 32;
const SALT_LENGTH = 16;
const HASH_PREFIX = 'scrypt';

function scryptAsync(password: string, salt: Buffer, keyLength: number, options: ScryptOptions): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    scrypt(password, salt, keyLength, options, (error, key) => (error ? reject(error) : resolve(key)));
  });
}

function scryptOptions(N: number, r: number, p: number): ScryptOptions {
  return { N, r, p, maxmem: 2 * 128 * N * r * p + 1024 * 1024 };
}

/** `scrypt$N$r$p$salt$hash` (salt and hash in base64url). */
export async function hashPassword(password: string): Promise<string> {
  const salt = randomBytes(SALT_LENGTH);
  const key = await scryptAsync(password, salt, KEY_LENGTH, scryptOptions(SCRYPT.N, SCRYPT.r, SCRYPT.p));
  return [HASH_PREFIX, SCRYPT.N, SCRYPT.r, SCRYPT.p, salt.toString('base64url'), key.toString('base64url')].join('$');
}

/** A hash of a password nobody knows, checked against when the account does not exist (same cost, same timing). */
let decoyHash: Promise<string> | undefined;

/**
 * Checks a password against a stored hash in constant time. With a null hash (no such
 * account) the same work is done against a decoy and the answer is false.
 */
export async function verifyPassword(password: string, stored: string | null): Promise<boolean> {
  const hash = stored ?? (await (decoyHash ??= hashPassword(randomBytes(16).toString('hex'))));
  const parts = hash.split('$');
  if (parts.length !== 6 || parts[0] !== HASH_PREFIX) return false;
  const [N, r, p] = parts.slice(1, 4).map(Number) as [number, number, number];
  const salt = Buffer.from(parts[4]!, 'base64url');
  const expected = Buffer.from(parts[5]!, 'base64url');
  if (![N, r, p].every((value) => Number.isInteger(value) && value > 0) || N > 1_048_576 || r * p > 64 || expected.length === 0) return false;
  const actual = await scryptAsync(password, salt, expected.length, scryptOptions(N, r, p));
  return timingSafeEqual(actual, expected) && stored !== null;
}

/** A random secret: 32 bytes, base64url (43 characters). */
export function generateSecret(bytes = 32): string {
  return randomBytes(bytes).toString('base64url');
}

/** A password for the first admin: 24 characters, no look-alike symbols to mistype. */
export function generatePassword(): string {
  return randomBytes(18).toString('base64url');
}

/**
 * Digest of a high-entropy secret (robot secrets, refresh tokens). A 256-bit random secret
 * needs no slow hash; SHA-256 keeps verification cheap enough for every request.
 */
export function hashSecret(secret: string): string {
  return createHash('sha256').update(secret, 'utf8').digest('hex');
}

/** Constant-time check of a secret against its stored digest. */
export function secretMatches(secret: string, storedDigest: string): boolean {
  const actual = Buffer.from(hashSecret(secret), 'hex');
  const expected = Buffer.from(storedDigest, 'hex');
  return actual.length === expected.length && timingSafeEqual(actual, expected);
}
