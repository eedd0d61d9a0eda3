/**
 * The on-disk layout of the filesystem driver:
 *
 *   <root>/
 *     blobs/<algorithm>/<first two hex>/<hex>   committed, verified blob content
 *     uploads/<uuid>                            an upload in progress (temporary)
 *
 * Uploads live on the same filesystem as blobs so that committing one is an atomic rename.
 * Names are built only from digests and upload ids that were validated first; these
 * checks keep a bad caller from ever escaping the root.
 */
import path from 'node:path';
import { checkedUploadId, digestParts, isUploadId } from '../common.js';

export class StoragePaths {
  readonly blobsDir: string;
  readonly uploadsDir: string;

  constructor(readonly root: string) {
    this.blobsDir = path.join(root, 'blobs');
    this.uploadsDir = path.join(root, 'uploads');
  }

  blob(digest: string): string {
    const { algorithm, hex } = digestParts(digest);
    return path.join(this.blobsDir, algorithm, hex.slice(0, 2), hex);
  }

  /** Whether a name can be an upload id (files of other names in the uploads folder are not ours). */
  static isUploadId(id: string): boolean {
    return isUploadId(id);
  }

  upload(id: string): string {
    return path.join(this.uploadsDir, checkedUploadId(id));
  }
}
