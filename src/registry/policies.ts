/**
 * The operator's lifecycle rules, compiled: which tags are immutable, which quota a repository
 * has, which retention policy applies to it; and the errors users see when a rule refuses
 * something. First matching rule wins for quotas and retention; any matching rule makes a tag
 * immutable.
 */
import { RegistryError } from './errors.js';
import { compilePatterns, type Matcher } from './patterns.js';
import type { BlobLinkGuard } from './ports.js';

export interface RetentionPolicyRule {
  name?: string;
  repositories: string[];
  keepLatest?: number;
  olderThanDays?: number;
  keepTags: string[];
}

export interface ImmutableTagRule {
  name?: string;
  repositories: string[];
  tags: string[];
}

export interface QuotaRule {
  name?: string;
  repositories: string[];
  maxBytes: number;
}

export interface LifecycleRules {
  retention: RetentionPolicyRule[];
  immutableTags: ImmutableTagRule[];
  quotas: QuotaRule[];
}

export const NO_RULES: LifecycleRules = { retention: [], immutableTags: [], quotas: [] };

/** A rule as reports and errors name it. */
export interface RuleRef {
  /** The rule's name, or its position and patterns when it has none. */
  label: string;
}

export interface CompiledRetention extends RuleRef {
  keepLatest?: number;
  olderThanDays?: number;
  keepTag: Matcher;
}

export interface CompiledQuota extends RuleRef {
  maxBytes: number;
}

interface Compiled<T> {
  repositories: Matcher;
  tags?: Matcher;
  rule: T;
}

export class LifecyclePolicies {
  private readonly immutable: Compiled<RuleRef>[];
  private readonly quotas: Compiled<CompiledQuota>[];
  private readonly retentions: Compiled<CompiledRetention>[];

  constructor(rules: LifecycleRules = NO_RULES) {
    this.immutable = rules.immutableTags.map((rule, i) => ({
      repositories: compilePatterns(rule.repositories, 'match-none'),
      tags: compilePatterns(rule.tags, 'match-none'),
      rule: { label: label('immutable tag rule', i, rule.name, `tags ${rule.tags.join(', ')} in ${rule.repositories.join(', ')}`) },
    }));
    this.quotas = rules.quotas.map((rule, i) => ({
      repositories: compilePatterns(rule.repositories, 'match-none'),
      rule: { label: label('quota', i, rule.name, rule.repositories.join(', ')), maxBytes: rule.maxBytes },
    }));
    this.retentions = rules.retention.map((rule, i) => ({
      repositories: compilePatterns(rule.repositories, 'match-none'),
      rule: {
        label: label('retention policy', i, rule.name, rule.repositories.join(', ')),
        keepLatest: rule.keepLatest,
        olderThanDays: rule.olderThanDays,
        keepTag: compilePatterns(rule.keepTags, 'match-none'),
      },
    }));
  }

  get hasRetention(): boolean {
    return this.retentions.length > 0;
  }

  get hasQuotas(): boolean {
    return this.quotas.length > 0;
  }

  /** The rule making `tag` of `repository` immutable, or null. */
  immutableRule(repository: string, tag: string): RuleRef | null {
    return this.immutable.find((entry) => entry.repositories(repository) && entry.tags!(tag))?.rule ?? null;
  }

  quota(repository: string): CompiledQuota | null {
    return this.quotas.find((entry) => entry.repositories(repository))?.rule ?? null;
  }

  retention(repository: string): CompiledRetention | null {
    return this.retentions.find((entry) => entry.repositories(repository))?.rule ?? null;
  }
}

/** Pushing a tag that an immutable rule protects and that already points elsewhere. */
export function immutableTagMoved(repository: string, tag: string, rule: RuleRef, currentDigest: string): RegistryError {
  return new RegistryError(
    'DENIED',
    `tag ${tag} of ${repository} is immutable (${rule.label}) and already points at ${currentDigest}; push under a new tag`,
    { repository, tag, digest: currentDigest, rule: rule.label },
  );
}

/** Deleting a tag (directly, or with its manifest) that an immutable rule protects. */
export function immutableTagDeleted(repository: string, tag: string, rule: RuleRef): RegistryError {
  return new RegistryError('DENIED', `tag ${tag} of ${repository} is immutable (${rule.label}) and cannot be deleted`, {
    repository,
    tag,
    rule: rule.label,
  });
}

/** A push that would take a repository over its quota. */
export function quotaExceeded(repository: string, quota: CompiledQuota, usageBytes: number): RegistryError {
  const over = usageBytes - quota.maxBytes;
  return new RegistryError(
    'DENIED',
    `quota exceeded: this push would bring ${repository} to ${formatBytes(usageBytes)}, ` +
      `${formatBytes(over)} over its quota of ${formatBytes(quota.maxBytes)} (${quota.label}); ` +
      `delete images you no longer need, then retry`,
    { repository, quotaBytes: quota.maxBytes, usageBytes, overBytes: over, rule: quota.label },
  );
}

/** `1536` → `1.5 KiB (1536 bytes)`; small sizes in bytes only. */
export function formatBytes(bytes: number): string {
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  if (Math.abs(bytes) < 1024) return `${bytes} ${bytes === 1 ? 'byte' : 'bytes'}`;
  let value = bytes;
  let unit = 'bytes';
  for (const next of units) {
    if (Math.abs(value) < 1024) break;
    value /= 1024;
    unit = next;
  }
  return `${value.toFixed(1)} ${unit} (${bytes} bytes)`;
}

function label(kind: string, index: number, name: string | undefined, patterns: string): string {
  return name ? `${kind} "${name}"` : `${kind} #${index + 1}: ${patterns}`;
}

/** What the early quota check on blob uploads reads. */
export interface UsageReader {
  heldBytes(repository: string): Promise<number>;
  holdsBlob(repository: string, digest: string): Promise<boolean>;
}

/**
 * Refuses early a blob upload that would take the repository over its quota: a blob the
 * repository does not hold yet adds its size to what it holds. The link itself is checked
 * again, exactly, in its transaction ({@link blobLinkGuard}), and so is every manifest push.
 */
export async function checkBlobQuota(
  policies: LifecyclePolicies,
  usage: UsageReader,
  repository: string,
  digest: string,
  size: number,
): Promise<void> {
  const quota = policies.quota(repository);
  if (!quota) return;
  if (await usage.holdsBlob(repository, digest)) return;
  const after = (await usage.heldBytes(repository)) + size;
  if (after > quota.maxBytes) throw quotaExceeded(repository, quota, after);
}

/**
 * The in-transaction quota check of a blob link (upload, mount, link on HEAD): refused when the
 * link adds bytes and takes the repository over its quota. Undefined when no quota applies.
 */
export function blobLinkGuard(policies: LifecyclePolicies, repository: string): BlobLinkGuard | undefined {
  const quota = policies.quota(repository);
  if (!quota) return undefined;
  return {
    quota: ({ before, after }) => {
      if (after > quota.maxBytes && after > before) throw quotaExceeded(repository, quota, after);
    },
  };
}
