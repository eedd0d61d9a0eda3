/**
 * Token signing and verification keys: generated on first start (owner-only file under the
 * storage root) or loaded from PEM files, each with its `kid` in the libtrust fingerprint form
 * that jwt.md specifies.
 */
import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, X509Certificate, type KeyObject } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

export type TokenAlgorithm = 'ES256' | 'RS256';

export interface VerificationKey {
  kid: string;
  algorithm: TokenAlgorithm;
  publicKey: KeyObject;
}

export interface SigningKey extends VerificationKey {
  privateKey: KeyObject;
}

const BASE32 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';

/**
 * The libtrust key ID: SHA-256 of the DER (SubjectPublicKeyInfo) public key, truncated to
 * 240 bits, base32-encoded and split into 12 groups of 4 with `:`.
 */
export function keyId(publicKey: KeyObject): string {
  const der = publicKey.export({ type: 'spki', format: 'der' });
  const digest = createHash('sha256').update(der).digest().subarray(0, 30);
  let bits = 0;
  let value = 0;
  let encoded = '';
  for (const byte of digest) {
    value = ((value << 8) | byte) & 0xffff;
    bits += 8;
    while (bits >= 5) {
      encoded += BASE32[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  return encoded.match(/.{4}/g)!.join(':');
}

/** The JWS algorithm a key signs with: ES256 for P-256 keys, RS256 for RSA keys of 2048 bits or more. */
export function algorithmOf(key: KeyObject): TokenAlgorithm {
  if (key.asymmetricKeyType === 'ec' && key.asymmetricKeyDetails?.namedCurve === 'prime256v1') return 'ES256';
  if (key.asymmetricKeyType === 'rsa' && (key.asymmetricKeyDetails?.modulusLength ?? 0) >= 2048) return 'RS256';
  throw new Error(`unsupported token key: ${key.asymmetricKeyType ?? 'unknown'} (use an EC P-256 or an RSA >= 2048-bit key)`);
}

function verificationKey(publicKey: KeyObject): VerificationKey {
  return { kid: keyId(publicKey), algorithm: algorithmOf(publicKey), publicKey };
}

function signingKeyFrom(privateKey: KeyObject): SigningKey {
  return { ...verificationKey(createPublicKey(privateKey)), privateKey };
}

/** A new private key for the algorithm, as PKCS#8 PEM. */
export function generateSigningKeyPem(algorithm: TokenAlgorithm): string {
  const pair = algorithm === 'ES256' ? generateKeyPairSync('ec', { namedCurve: 'P-256' }) : generateKeyPairSync('rsa', { modulusLength: 3072 });
  return pair.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
}

/** A signing key from PEM text; `source` names where it came from in errors. */
export function signingKeyFromPem(pem: string, source: string): SigningKey {
  try {
    return signingKeyFrom(createPrivateKey(pem));
  } catch (error) {
    throw new Error(`token signing key ${source}: ${(error as Error).message}`);
  }
}

/** Loads a PEM private key file. */
export function loadSigningKey(file: string): SigningKey {
  return signingKeyFromPem(readKeyFile(file), file);
}

/**
 * Loads the signing key at `file`, generating it first (mode 0600, in a 0700 folder) when it
 * does not exist yet. Returns whether it was created.
 */
export function loadOrCreateSigningKey(file: string, algorithm: TokenAlgorithm): { key: SigningKey; created: boolean } {
  if (!fs.existsSync(file)) {
    fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
    const pem = generateSigningKeyPem(algorithm);
    try {
      // `wx`: never overwrite a key another process just wrote.
      fs.writeFileSync(file, pem, { mode: 0o600, flag: 'wx' });
      return { key: signingKeyFromPem(pem, file), created: true };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    }
  }
  return { key: loadSigningKey(file), created: false };
}

/** True when a key file can be read by group or others (it should be owner-only). */
export function isExposed(file: string): boolean {
  return (fs.statSync(file).mode & 0o077) !== 0;
}

/** Loads a PEM public key or X.509 certificate (its public key) that tokens may be verified with. */
export function loadVerificationKey(file: string): VerificationKey {
  const pem = readKeyFile(file);
  try {
    const publicKey = pem.includes('BEGIN CERTIFICATE') ? new X509Certificate(pem).publicKey : createPublicKey(pem);
    return verificationKey(publicKey);
  } catch (error) {
    throw new Error(`token verification key ${file}: ${(error as Error).message}`);
  }
}

function readKeyFile(file: string): string {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch (error) {
    throw new Error(`cannot read key file ${file}: ${(error as Error).message}`);
  }
}
