/** Hashing helpers: the one place that knows how a digest string is computed. */
import { createHash, type Hash } from 'node:crypto';
import type { Readable } from 'node:stream';
import { parseDigest, type DigestAlgorithm } from './references.js';

export function createDigester(algorithm: DigestAlgorithm = 'sha256'): Hash {
  return createHash(algorithm);
}

export function digestOf(hash: Hash, algorithm: DigestAlgorithm = 'sha256'): string {
  return `${algorithm}:${hash.digest('hex')}`;
}

export function digestBytes(bytes: Uint8Array, algorithm: DigestAlgorithm = 'sha256'): string {
  return digestOf(createHash(algorithm).update(bytes), algorithm);
}

/** Hashes a stream to the end without keeping any of it. */
export async function digestStream(stream: Readable, algorithm: DigestAlgorithm = 'sha256'): Promise<string> {
  const hash = createHash(algorithm);
  for await (const chunk of stream) hash.update(chunk as Buffer);
  return digestOf(hash, algorithm);
}

export function algorithmOf(digest: string): DigestAlgorithm {
  return parseDigest(digest).algorithm;
}
