/**
 * Subscriptions: the input accepted from the API, the CLI and the config file, and the
 * compiled filter that decides which events a subscription receives.
 */
import { z } from 'zod';
import { SUBSCRIPTION_ID } from './config.js';
import { compileFilter, MAX_PATTERN_LENGTH, PatternError, validatePatterns } from './filters.js';
import { formatSupports } from './formats.js';
import { RESERVED_HEADERS } from './attempt.js';
import {
  DEFAULT_EVENT_TYPES,
  SUBSCRIBABLE_EVENT_TYPES,
  SUBSCRIPTION_STATES,
  WEBHOOK_FORMATS,
  type Subscription,
  type SubscriptionState,
  type SubscribableEventType,
} from './types.js';

const HEADER_NAME = /^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,128}$/;

const headersSchema = z
  .record(z.string(), z.string().max(4096).regex(/^[^\r\n\0]*$/, 'must be one line'))
  .refine((headers) => Object.keys(headers).length <= 32, 'at most 32 headers')
  .superRefine((headers, ctx) => {
    for (const name of Object.keys(headers)) {
      if (!HEADER_NAME.test(name)) {
        ctx.addIssue({ code: 'custom', message: `${JSON.stringify(name.slice(0, 130))} is not an HTTP header name`, path: [name] });
      } else if (RESERVED_HEADERS.has(name.toLowerCase()) || name.toLowerCase().startsWith('x-registry-')) {
        ctx.addIssue({ code: 'custom', message: `header ${name} is set by the registry and cannot be overridden`, path: [name] });
      }
    }
  });

const patternList = z.array(z.string().min(1).max(MAX_PATTERN_LENGTH)).max(100);

/** What a client sends to create a subscription. */
export const subscriptionInputSchema = z
  .object({
    id: z.string().regex(SUBSCRIPTION_ID, 'must be lowercase letters, digits, ".", "_" or "-" (at most 63)').optional(),
    url: z.url({ protocol: /^https?$/, error: 'must be an http(s) URL' }).max(2048),
    /** At least 16 characters; generated when left out (and returned once). */
    secret: z.string().min(16, 'must be at least 16 characters').max(512).optional(),
    events: z.array(z.enum(SUBSCRIBABLE_EVENT_TYPES)).max(SUBSCRIBABLE_EVENT_TYPES.length).default([]),
    repositories: patternList.default([]),
    tags: patternList.default([]),
    headers: headersSchema.default({}),
    format: z.enum(WEBHOOK_FORMATS).default('native'),
    state: z.enum(SUBSCRIPTION_STATES).optional(),
    /** The older switch: true is `state: active`, false `state: paused`. */
    active: z.boolean().optional(),
  })
  .strict()
  .superRefine(stateAgreesWithActive)
  .transform(({ active, ...fields }) => ({ ...fields, state: fields.state ?? stateOf(active) ?? ('active' as const) }));

/** What a client sends to change a subscription: any subset of the fields, id excepted. */
export const subscriptionPatchSchema = z
  .object({
    url: z.url({ protocol: /^https?$/, error: 'must be an http(s) URL' }).max(2048).optional(),
    secret: z.string().min(16, 'must be at least 16 characters').max(512).optional(),
    events: z.array(z.enum(SUBSCRIBABLE_EVENT_TYPES)).max(SUBSCRIBABLE_EVENT_TYPES.length).optional(),
    repositories: patternList.optional(),
    tags: patternList.optional(),
    headers: headersSchema.optional(),
    format: z.enum(WEBHOOK_FORMATS).optional(),
    state: z.enum(SUBSCRIPTION_STATES).optional(),
    active: z.boolean().optional(),
  })
  .strict()
  .superRefine(stateAgreesWithActive)
  .transform(({ active, ...fields }) => ({ ...fields, state: fields.state ?? stateOf(active) }));

function stateOf(active: boolean | undefined): SubscriptionState | undefined {
  return active === undefined ? undefined : active ? 'active' : 'paused';
}

function stateAgreesWithActive(fields: { state?: SubscriptionState; active?: boolean }, ctx: z.RefinementCtx): void {
  if (fields.state !== undefined && fields.active !== undefined && (fields.state === 'active') !== fields.active) {
    ctx.addIssue({ code: 'custom', path: ['active'], message: `contradicts state ${fields.state}` });
  }
}

/** Throws PatternError naming the first malformed repository or tag pattern. */
export function validateSubscriptionPatterns(fields: { repositories?: string[]; tags?: string[] }): void {
  validatePatterns(fields.repositories ?? []);
  validatePatterns(fields.tags ?? []);
}

/** The facts of an event a filter looks at. */
export interface FilterableEvent {
  seq?: number;
  type: SubscribableEventType;
  repository: string;
  tag: string | null;
}

export interface CompiledSubscription {
  subscription: Subscription;
  matches(event: FilterableEvent): boolean;
}

/**
 * The subscription's filter: the event type is one it asked for (every change when it
 * listed none), its format can express it, the repository matches, and — when tag patterns
 * are given — the event has a tag that matches. Outbox events older than the subscription
 * never match.
 */
export function compileSubscription(subscription: Subscription): CompiledSubscription {
  let repository: (value: string) => boolean;
  let tag: (value: string) => boolean;
  try {
    repository = compileFilter(subscription.repositories);
    tag = compileFilter(subscription.tags);
  } catch (error) {
    if (!(error instanceof PatternError)) throw error;
    return { subscription, matches: () => false };
  }
  const types = new Set<string>(subscription.events.length > 0 ? subscription.events : DEFAULT_EVENT_TYPES);
  const filtersTags = subscription.tags.length > 0;
  return {
    subscription,
    matches(event) {
      if (event.seq !== undefined && event.seq <= subscription.startSeq) return false;
      if (!types.has(event.type) || !formatSupports(subscription.format, event.type)) return false;
      if (!repository(event.repository)) return false;
      if (filtersTags && (event.tag === null || !tag(event.tag))) return false;
      return true;
    },
  };
}
