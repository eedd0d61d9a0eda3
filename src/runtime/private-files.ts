/**
 * The storage root holds account data, webhook secrets and private images, so nothing in it is
 * for other local users: the root and its folders are created 0700 and its files 0600. Modes
 * passed to mkdir/open are only ever narrowed by the umask, so this holds whatever the umask.
 * (The filesystem blob store and the SQLite store set the same modes where they create files.)
 */
import fs from 'node:fs/promises';

export const PRIVATE_DIRECTORY_MODE = 0o700;
export const PRIVATE_FILE_MODE = 0o600;

export interface StorageRootState {
  /** True when this call created it (0700). */
  created: boolean;
  /** Permission bits of an existing root that other users may read or enter; null when they may not. */
  exposedMode: number | null;
}

/**
 * Creates the storage root 0700 when missing, and narrows an empty one (a fresh volume's mount
 * point, which the registry is about to fill) to 0700 when it may. For a root already in use it
 * only says whether others can get in: that folder's modes are the operator's.
 */
export async function preparePrivateRoot(root: string): Promise<StorageRootState> {
  let mode: number;
  try {
    mode = (await fs.stat(root)).mode & 0o777;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    await fs.mkdir(root, { recursive: true, mode: PRIVATE_DIRECTORY_MODE });
    return { created: true, exposedMode: null };
  }
  if ((mode & 0o005) === 0) return { created: false, exposedMode: null };
  const entries = await fs.readdir(root);
  if (entries.every((entry) => entry === 'lost+found')) {
    try {
      await fs.chmod(root, mode & PRIVATE_DIRECTORY_MODE);
      return { created: true, exposedMode: null };
    } catch {
      // Not ours to change (a volume owned by another user): warn instead.
    }
  }
  return { created: false, exposedMode: mode };
}

/** The start-up warning for an existing root others can read (the registry never changes an operator's modes on its own). */
export function exposedRootWarning(root: string, mode: number): string {
  return `storage root ${root} is readable by other users (mode ${mode.toString(8).padStart(4, '0')}): it holds account data, webhook secrets and images; run chmod 700 ${JSON.stringify(root)} (or 750 for a backup group)`;
}
