/**
 * Where blobs live: the filesystem under `storage.root` (the default), or an S3-compatible
 * bucket; and whether blob GETs are redirected to the object store. The metadata database
 * stays under `storage.root` either way.
 */
import { z } from 'zod';
import { sizeSchema } from './lifecycle.js';

const MiB = 1024 * 1024;
const httpUrl = (example: string) => z.url({ protocol: /^https?$/, error: `must be an http(s) URL such as ${example}` });

const s3Schema = z
  .object({
    /** The bucket (it must exist; the registry does not create it). */
    bucket: z.string().min(3, 'must be a bucket name (3 characters or more)').optional(),
    /** S3-compatible endpoint, e.g. http://127.0.0.1:7480; unset: AWS for the region. */
    endpoint: httpUrl('http://127.0.0.1:7480').optional(),
    region: z.string().min(1).default('us-east-1'),
    /** Unset (with secretKey): the AWS SDK's credential chain (AWS_* variables, profiles, instance roles). */
    accessKey: z.string().min(1).optional(),
    secretKey: z.string().min(1).optional(),
    /** Bucket in the path (http://host/bucket/key) instead of the host name: most S3-compatible servers want it. */
    forcePathStyle: z.boolean().default(false),
    /** Key prefix inside the bucket, e.g. `registry/` (a slash is added when missing). */
    prefix: z
      .string()
      .default('')
      .refine((prefix) => !prefix.startsWith('/'), 'must not start with /')
      .transform((prefix) => (prefix === '' || prefix.endsWith('/') ? prefix : `${prefix}/`)),
    /** Multipart part size: what an upload buffers in memory at most; at least 5 MiB (S3's minimum). */
    partSize: sizeSchema
      .default(10 * MiB)
      .refine((size) => size >= 5 * MiB, 'must be at least 5MiB (S3 refuses smaller parts)')
      .refine((size) => size <= 512 * MiB, 'must be at most 512MiB (each upload buffers one part in memory)'),
  })
  .strict()
  .prefault({});

const redirectSchema = z
  .object({
    /** Blob GETs answer 307 to a presigned URL of the object store instead of streaming through the registry. */
    enabled: z.boolean().default(false),
    /** How long a presigned URL stays valid. */
    expirySeconds: z.number().int().min(1).max(7 * 24 * 3600).default(300),
    /** The object store's address as clients reach it, when it differs from storage.s3.endpoint. */
    publicEndpoint: httpUrl('https://s3.example.com').optional(),
  })
  .strict()
  .prefault({});

export const storageConfigSchema = z
  .object({
    /** `filesystem` (blobs under root) or `s3` (blobs in storage.s3.bucket). */
    driver: z.enum(['filesystem', 's3']).default('filesystem'),
    /** Folder holding blobs (filesystem driver), uploads and the metadata database. */
    root: z.string().min(1, 'must not be empty').default('./storage'),
    /** Allow DELETE of manifests, tags and blobs. */
    deleteEnabled: z.boolean().default(true),
    /** Maintenance: pulls only; every change refused (405 UNSUPPORTED), no webhook deliveries, pull events or scheduled collections (docs/migrate.md). */
    readOnly: z.boolean().default(false),
    s3: s3Schema,
    redirect: redirectSchema,
  })
  .strict()
  .prefault({})
  .superRefine((storage, ctx) => {
    if (storage.driver === 's3' && !storage.s3.bucket) {
      ctx.addIssue({ code: 'custom', path: ['s3', 'bucket'], message: 'is required with storage.driver s3' });
    }
    if ((storage.s3.accessKey === undefined) !== (storage.s3.secretKey === undefined)) {
      const missing = storage.s3.accessKey === undefined ? 'accessKey' : 'secretKey';
      ctx.addIssue({ code: 'custom', path: ['s3', missing], message: 'give both storage.s3.accessKey and storage.s3.secretKey, or neither (the AWS credential chain)' });
    }
    if (storage.redirect.enabled && storage.driver !== 's3') {
      ctx.addIssue({ code: 'custom', path: ['redirect', 'enabled'], message: 'needs storage.driver s3 (the filesystem driver has no URL to redirect to)' });
    }
  });

export type StorageConfig = z.infer<typeof storageConfigSchema>;
export type S3Settings = StorageConfig['s3'];
