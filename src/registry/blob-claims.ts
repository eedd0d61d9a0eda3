/**
 * Claims keep garbage collection away from a digest while its content is put in place and
 * linked. When a collection is deleting the blob right now, the claim waits (briefly, in
 * bounded steps) for the deletion to finish, so that the push wins and stores the content
 * anew; only if the collection is still at it afterwards does the push fail, with a status the
 * client retries.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { retryShortly, type RegistryError } from './errors.js';
import type { MetadataStore } from './ports.js';

export interface ClaimOptions {
  /** Pause between attempts while a collection deletes the blob. */
  retryDelayMs: number;
  /** Attempts before giving up. */
  attempts: number;
}

export const DEFAULT_CLAIM_OPTIONS: ClaimOptions = { retryDelayMs: 25, attempts: 400 };

/** A claim on `digest`, waiting while a collection deletes it; null when it is still being deleted after every attempt. */
export async function claimBlob(metadata: MetadataStore, digest: string, options: ClaimOptions = DEFAULT_CLAIM_OPTIONS): Promise<string | null> {
  for (let attempt = 0; attempt < options.attempts; attempt++) {
    const claim = await metadata.claimBlob(digest);
    if (claim !== null) return claim;
    await sleep(options.retryDelayMs);
  }
  return null;
}

/** What a push gets when garbage collection holds on to a digest for too long. */
export function blobBeingCollected(digest: string): RegistryError {
  return retryShortly(`blob ${digest} is being deleted by garbage collection; retry the upload in a moment`, { digest });
}
