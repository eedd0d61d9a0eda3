/**
 * The spec's grammar for repository names, tags and digests, and the checks that turn a
 * malformed one into the right error code.
 */
import { isIP } from 'node:net';
import { RegistryError } from './errors.js';

const NAME_COMPONENT = '[a-z0-9]+(?:(?:\\.|_|__|-+)[a-z0-9]+)*';
const NAME_PATTERN = new RegExp(`^${NAME_COMPONENT}(?:/${NAME_COMPONENT})*$`);
const TAG_PATTERN = /^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$/;
const DIGEST_PATTERN = /^[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$/;

/** Longest repository name the spec allows (fewer than 256 characters, slashes included). */
export const MAX_NAME_LENGTH = 255;

/** Hash algorithms the registry can verify, with the hex length of their digests. */
export const DIGEST_ALGORITHMS = { sha256: 64, sha512: 128 } as const;
export type DigestAlgorithm = keyof typeof DIGEST_ALGORITHMS;

export function isValidName(name: string): boolean {
  return name.length <= MAX_NAME_LENGTH && NAME_PATTERN.test(name);
}

export function assertName(name: string): string {
  if (!isValidName(name)) {
    throw new RegistryError('NAME_INVALID', `invalid repository name: ${JSON.stringify(name.slice(0, 300))}`, { name });
  }
  return name;
}

export function isValidTag(tag: string): boolean {
  return TAG_PATTERN.test(tag);
}

export function assertTag(tag: string): string {
  if (!isValidTag(tag)) {
    throw new RegistryError('TAG_INVALID', `invalid tag: ${JSON.stringify(tag.slice(0, 200))}`, { tag });
  }
  return tag;
}

const HOST_LABEL = '[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?';
const HOST_NAME = new RegExp(`^${HOST_LABEL}(?:\\.${HOST_LABEL})*$`);
const HOST_AND_PORT = /^(\[[0-9a-f:.]+\]|[^:[\]]+)(?::(\d{1,5}))?$/;

/**
 * The `host[:port]` a client names a registry by (the first part of an image reference), in
 * lower case: a DNS name, an IPv4 address or a bracketed IPv6 address, and a port from 1 to
 * 65535; null for anything else (a path, userinfo, spaces, a list, an empty port). Requests
 * carry it in `Host` or `X-Forwarded-Host`, so it is checked before it reaches an event.
 */
export function normaliseRegistryHost(raw: string | undefined | null): string | null {
  if (typeof raw !== 'string' || raw.length > 270) return null;
  const match = HOST_AND_PORT.exec(raw.toLowerCase());
  if (!match) return null;
  const host = match[1]!;
  const port = match[2] === undefined ? undefined : Number(match[2]);
  if (port !== undefined && (port < 1 || port > 65535)) return null;
  const valid = host.startsWith('[') ? isIP(host.slice(1, -1)) === 6 : host.length <= 253 && (/^[\d.]+$/.test(host) ? isIP(host) === 4 : HOST_NAME.test(host));
  if (!valid) return null;
  return port === undefined ? host : `${host}:${port}`;
}

/** Whether a digest follows the spec's grammar (`algorithm:encoded`), supported algorithm or not. */
export function isDigestSyntax(digest: string): boolean {
  return DIGEST_PATTERN.test(digest);
}

/** True for strings shaped like a digest (`algorithm:encoded`), whatever the algorithm. */
export function looksLikeDigest(reference: string): boolean {
  return reference.includes(':');
}

export interface ParsedDigest {
  algorithm: DigestAlgorithm;
  hex: string;
}

/**
 * Parses a digest the registry can verify. A digest of the right shape with an algorithm we
 * cannot compute, or of the wrong length, is DIGEST_INVALID as well: we could never prove it.
 */
export function parseDigest(digest: string): ParsedDigest {
  if (!DIGEST_PATTERN.test(digest)) {
    throw new RegistryError('DIGEST_INVALID', `invalid digest: ${JSON.stringify(digest.slice(0, 200))}`, { digest });
  }
  const [algorithm, hex] = digest.split(':') as [string, string];
  if (!(algorithm in DIGEST_ALGORITHMS)) {
    throw new RegistryError('DIGEST_INVALID', `unsupported digest algorithm: ${algorithm}`, { digest });
  }
  const expectedLength = DIGEST_ALGORITHMS[algorithm as DigestAlgorithm];
  if (hex.length !== expectedLength || !/^[a-f0-9]+$/.test(hex)) {
    throw new RegistryError('DIGEST_INVALID', `invalid ${algorithm} digest: expected ${expectedLength} lowercase hex characters`, {
      digest,
    });
  }
  return { algorithm: algorithm as DigestAlgorithm, hex };
}

export function assertDigest(digest: string): string {
  parseDigest(digest);
  return digest;
}

/** A manifest reference is a tag or a digest. */
export type ManifestReference = { kind: 'tag'; tag: string } | { kind: 'digest'; digest: string };

export function parseManifestReference(reference: string): ManifestReference {
  if (looksLikeDigest(reference)) return { kind: 'digest', digest: assertDigest(reference) };
  return { kind: 'tag', tag: assertTag(reference) };
}
