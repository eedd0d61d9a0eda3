/**
 * Retention: which tags of a repository its policy lets go. A tag is deleted only when none of
 * these keeps it: it is among the `keepLatest` most recently pushed; it matches `keepTags`; an
 * immutable rule protects it; it was pushed less than `olderThanDays` ago. Garbage collection
 * applies the decision (a manifest whose last tag goes is removed from the repository too,
 * unless an index there lists it) and reports it; a dry run only reports.
 */
import type { RetentionDrop, TagRecord } from './lifecycle-store.js';
import type { CompiledRetention, LifecyclePolicies } from './policies.js';

const DAY_MS = 86_400_000;

export type KeepReason = 'latest' | 'pattern' | 'immutable' | 'recent';

export interface RetentionDecision {
  repository: string;
  policy: string;
  kept: Array<{ tag: string; reason: KeepReason }>;
  dropped: RetentionDrop[];
}

/** Decides for one repository; `tags` in any order. */
export function decideRetention(
  repository: string,
  tags: TagRecord[],
  policy: CompiledRetention,
  policies: LifecyclePolicies,
  now: number,
): RetentionDecision {
  const newestFirst = [...tags].sort((a, b) => b.updatedAt - a.updatedAt || (a.tag < b.tag ? -1 : a.tag > b.tag ? 1 : 0));
  const decision: RetentionDecision = { repository, policy: policy.label, kept: [], dropped: [] };
  newestFirst.forEach((tag, position) => {
    const reason = keepReason(repository, tag, position, policy, policies, now);
    if (reason) decision.kept.push({ tag: tag.tag, reason });
    else decision.dropped.push({ repository, tag: tag.tag, digest: tag.digest, policy: policy.label });
  });
  return decision;
}

function keepReason(
  repository: string,
  tag: TagRecord,
  position: number,
  policy: CompiledRetention,
  policies: LifecyclePolicies,
  now: number,
): KeepReason | null {
  if (policy.keepLatest !== undefined && position < policy.keepLatest) return 'latest';
  if (policy.keepTag(tag.tag)) return 'pattern';
  if (policies.immutableRule(repository, tag.tag)) return 'immutable';
  if (policy.olderThanDays !== undefined && tag.updatedAt > now - policy.olderThanDays * DAY_MS) return 'recent';
  return null;
}
