/**
 * The bucket's layout, under the configured prefix:
 *
 *   <prefix>blobs/<algorithm>/<first two hex>/<hex>   committed, verified blob content
 *   <prefix>uploads/<id>/data                         an upload's multipart upload, then the
 *                                                     object it completes into before the copy
 *   <prefix>uploads/<id>/tail-<parts>                 the bytes after the upload's first
 *                                                     <parts> parts (shorter than a part)
 *
 * Nothing under uploads/ is ever served: a blob is visible only once copied to its content
 * address. Keys are built only from checked digests and upload ids (storage/common.ts).
 */
import { checkedUploadId, digestParts, isUploadId } from '../common.js';

const DIGEST_KEY = /^(sha256|sha512)\/[a-f0-9]{2}\/([a-f0-9]{64}|[a-f0-9]{128})$/;

export class S3Layout {
  readonly blobsPrefix: string;
  readonly uploadsPrefix: string;

  constructor(readonly prefix: string) {
    this.blobsPrefix = `${prefix}blobs/`;
    this.uploadsPrefix = `${prefix}uploads/`;
  }

  blob(digest: string): string {
    const { algorithm, hex } = digestParts(digest);
    return `${this.blobsPrefix}${algorithm}/${hex.slice(0, 2)}/${hex}`;
  }

  /** The digest a blob key stands for, or null for a key that is not one of ours. */
  digestOf(key: string): string | null {
    const match = DIGEST_KEY.exec(key.slice(this.blobsPrefix.length));
    return key.startsWith(this.blobsPrefix) && match ? `${match[1]}:${match[2]}` : null;
  }

  upload(id: string): string {
    return `${this.uploadsPrefix}${checkedUploadId(id)}/`;
  }

  uploadData(id: string): string {
    return `${this.upload(id)}data`;
  }

  uploadTail(id: string, parts: number): string {
    return `${this.upload(id)}tail-${parts}`;
  }

  /** The upload id of a key under uploads/, or null for a key that is not one of ours. */
  uploadIdOf(key: string): string | null {
    if (!key.startsWith(this.uploadsPrefix)) return null;
    const id = key.slice(this.uploadsPrefix.length).split('/')[0] ?? '';
    return isUploadId(id) ? id : null;
  }
}
