/**
 * The token signing key when several replicas share one database (metadata.driver postgres):
 * a token issued by one replica must verify on every other, so no replica may generate a key of
 * its own under its storage root. Without `auth.token.signingKey` the key is the one the
 * database holds (generated once, by whichever replica starts first). With it, every replica
 * must be given the same file: a replica refuses to start when the key the others last signed
 * with is one it can neither sign with nor verify (`auth.token.trustedKeys`), saying why.
 */
import type { AuthConfig } from './config.js';
import { generateSigningKeyPem, loadVerificationKey, signingKeyFromPem, type SigningKey } from './keys.js';

/** What the database offers (the metadata backend's shared state). */
export interface SigningKeySource {
  signingKey(algorithm: string, generate: () => string): Promise<{ pem: string; algorithm: string; created: boolean }>;
  announceSigner(kid: string): Promise<string | null>;
}

export class UnsharedSigningKey extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UnsharedSigningKey';
  }
}

/** The key the database holds, created once. */
export async function databaseSigningKey(source: SigningKeySource, config: AuthConfig, onCreated: (key: SigningKey) => void): Promise<SigningKey> {
  const algorithm = config.token.algorithm;
  const stored = await source.signingKey(algorithm, () => generateSigningKeyPem(algorithm));
  const key = signingKeyFromPem(stored.pem, 'held by the database (table token_signing_keys)');
  if (stored.created) onCreated(key);
  return key;
}

/**
 * Records the kid this replica signs with, refusing (UnsharedSigningKey) when the replicas
 * before it signed with a key this one cannot verify: their tokens would fail here, and ours there.
 */
export async function checkSharedSigner(source: SigningKeySource, config: AuthConfig, key: SigningKey): Promise<void> {
  const known = new Set([key.kid, ...config.token.trustedKeys.map((file) => loadVerificationKey(file).kid)]);
  const previous = await source.announceSigner(key.kid);
  if (previous !== null && !known.has(previous)) {
    const ours = config.token.signingKey ? `auth.token.signingKey (${config.token.signingKey}, kid ${key.kid})` : `the database's key (kid ${key.kid})`;
    throw new UnsharedSigningKey(
      `refusing to start: the other replicas of this database sign tokens with key ${previous}, and this replica signs with ${ours} ` +
        'and does not trust theirs, so tokens issued by one replica would be refused by the other. Give every replica the same ' +
        'auth.token.signingKey (or none, to use the key the database holds); to rotate keys, first add the new public key to ' +
        'auth.token.trustedKeys everywhere.',
    );
  }
}
