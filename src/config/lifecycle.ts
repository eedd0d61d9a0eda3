/**
 * The `lifecycle` settings: garbage collection (schedule, grace period, untagged manifests,
 * stale uploads), retention policies, immutable tag rules and quotas. Rules are lists and are
 * set in the configuration file; the scalar gc settings can also come from REGISTRY_LIFECYCLE_GC_*.
 */
import { z } from 'zod';
import { patternProblem } from '../registry/patterns.js';

const UNITS: Record<string, number> = {
  b: 1,
  kb: 1e3,
  mb: 1e6,
  gb: 1e9,
  tb: 1e12,
  kib: 2 ** 10,
  mib: 2 ** 20,
  gib: 2 ** 30,
  tib: 2 ** 40,
};
const SIZE = /^(\d+(?:\.\d+)?)\s*([kmgt]i?b|b)?$/i;

/** `10GiB`, `500 MB`, `1.5TiB`, or a plain number of bytes. */
export function parseSize(text: string): number | null {
  const match = SIZE.exec(text.trim());
  if (!match) return null;
  const bytes = Number(match[1]) * UNITS[(match[2] ?? 'b').toLowerCase()]!;
  return Number.isSafeInteger(Math.round(bytes)) ? Math.round(bytes) : null;
}

const SIZE_MESSAGE = 'must be a number of bytes or a size such as 500MB, 10GiB';
export const sizeSchema = z.preprocess(
  (value) => (typeof value === 'string' ? (parseSize(value) ?? value) : value),
  z.number({ error: SIZE_MESSAGE }).int(SIZE_MESSAGE).nonnegative(SIZE_MESSAGE),
);

const patternSchema = z.string().superRefine((pattern, ctx) => {
  const problem = patternProblem(pattern);
  if (problem) ctx.addIssue({ code: 'custom', message: problem });
});
const patternsSchema = z.array(patternSchema);

const ruleName = z.string().min(1).max(100).optional();

const retentionPolicySchema = z
  .object({
    /** Shown in reports; default: the policy's position and repository patterns. */
    name: ruleName,
    /** Repository patterns the policy applies to (the first matching policy wins). */
    repositories: patternsSchema.min(1, 'name at least one repository pattern'),
    /** Keep the N most recently pushed tags. */
    keepLatest: z.number().int().nonnegative().optional(),
    /** Delete only tags last pushed more than this many days ago. */
    olderThanDays: z.number().nonnegative().optional(),
    /** Tags matching any of these are always kept (e.g. semver:stable). */
    keepTags: patternsSchema.default([]),
  })
  .strict()
  .refine((policy) => policy.keepLatest !== undefined || policy.olderThanDays !== undefined, {
    message: 'set keepLatest, olderThanDays or both (a policy with neither would delete every tag)',
  });

const immutableRuleSchema = z
  .object({
    /** Named in the error users see; default: the rule's patterns. */
    name: ruleName,
    /** Repository patterns; default: every repository. */
    repositories: patternsSchema.min(1).default(['**']),
    /** Tag patterns that, once pushed, may neither be moved nor deleted (e.g. v*, *.RELEASE). */
    tags: patternsSchema.min(1, 'name at least one tag pattern'),
  })
  .strict();

const quotaSchema = z
  .object({
    name: ruleName,
    /** Repository patterns; each matching repository gets this quota (the first matching rule wins). */
    repositories: patternsSchema.min(1, 'name at least one repository pattern'),
    /** Largest stored size of one repository: bytes, or a size such as 500MB, 10GiB. */
    maxBytes: sizeSchema,
  })
  .strict();

export const lifecycleConfigSchema = z
  .object({
    gc: z
      .object({
        /** Seconds between scheduled collections; 0 turns the schedule off (the API and CLI still collect). */
        intervalSeconds: z.number().int().nonnegative().default(86_400),
        /** Blobs linked, uploaded or manifests pushed more recently than this are never collected. */
        gracePeriodSeconds: z.number().int().nonnegative().default(3_600),
        /** Collect untagged manifests (not referenced by an index or as a referrer) older than this; 0 keeps them. */
        untaggedManifestAgeSeconds: z.number().int().nonnegative().default(0),
        /** Upload sessions idle for longer than this are purged with their temporary files. */
        uploadMaxAgeSeconds: z.number().int().min(60, 'must be at least 60').default(86_400),
      })
      .strict()
      .prefault({}),
    retention: z.array(retentionPolicySchema).default([]),
    immutableTags: z.array(immutableRuleSchema).default([]),
    quotas: z.array(quotaSchema).default([]),
  })
  .strict()
  .prefault({});

export type LifecycleConfig = z.infer<typeof lifecycleConfigSchema>;
