/** Manifest media types the registry stores, and the Accept negotiation over them. */

export const MEDIA_TYPES = {
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  dockerManifestList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  dockerSchema1: 'application/vnd.docker.distribution.manifest.v1+json',
  dockerSchema1Signed: 'application/vnd.docker.distribution.manifest.v1+prettyjws',
} as const;

/** Whether a manifest of this type lists images (an index) or layers (an image manifest). */
export type ManifestKind = 'image' | 'index';

const SUPPORTED: Record<string, ManifestKind> = {
  [MEDIA_TYPES.ociManifest]: 'image',
  [MEDIA_TYPES.dockerManifest]: 'image',
  [MEDIA_TYPES.ociIndex]: 'index',
  [MEDIA_TYPES.dockerManifestList]: 'index',
};

export function manifestKind(mediaType: string): ManifestKind | undefined {
  return SUPPORTED[mediaType];
}

export function isSchema1(mediaType: string): boolean {
  return mediaType === MEDIA_TYPES.dockerSchema1 || mediaType === MEDIA_TYPES.dockerSchema1Signed;
}

/** Drops parameters (`; charset=…`) and case, as the spec asks registries to. */
export function bareMediaType(contentType: string | undefined): string | undefined {
  const bare = contentType?.split(';')[0]?.trim().toLowerCase();
  return bare ? bare : undefined;
}

/**
 * True when a client's Accept header admits the stored media type. No Accept header, a
 * wildcard, or a header naming no manifest type at all admits everything, as curl and
 * simple tools expect; a client that lists manifest types gets only those.
 */
export function accepts(acceptHeader: string | undefined, mediaType: string): boolean {
  if (!acceptHeader) return true;
  const accepted = acceptHeader
    .split(',')
    .map((entry) => bareMediaType(entry))
    .filter((entry): entry is string => entry !== undefined);
  if (accepted.some((entry) => entry === mediaType || entry === '*/*' || entry === 'application/*')) return true;
  return !accepted.some((entry) => manifestKind(entry) !== undefined || isSchema1(entry));
}
