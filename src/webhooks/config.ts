/**
 * The `webhooks` section of the registry configuration: how the dispatcher delivers, where it
 * may deliver to, and subscriptions declared in the config file rather than through the API.
 */
import { z } from 'zod';
import { parseHostRule } from './outbound.js';
import { SUBSCRIBABLE_EVENT_TYPES, SUBSCRIPTION_STATES, WEBHOOK_FORMATS } from './types.js';

/** A list given as YAML sequence, or as one comma-separated string (environment variables). */
const hostList = z.preprocess(
  (value) =>
    typeof value === 'string'
      ? value
          .split(',')
          .map((entry) => entry.trim())
          .filter((entry) => entry !== '')
      : value,
  z.array(
    z
      .string()
      .min(1)
      .max(253)
      .superRefine((entry, ctx) => {
        try {
          parseHostRule(entry);
        } catch (error) {
          ctx.addIssue({ code: 'custom', message: (error as Error).message });
        }
      }),
  ),
);

/** Identifier of a subscription: config-declared ones choose theirs, API ones get `wh_…`. */
export const SUBSCRIPTION_ID = /^[a-z0-9][a-z0-9._-]{0,62}$/;

export const staticSubscriptionSchema = z
  .object({
    /** Stable identifier (lowercase letters, digits, `.`, `_`, `-`), used by the API and the delivery log. */
    id: z.string().regex(SUBSCRIPTION_ID, 'must be lowercase letters, digits, ".", "_" or "-" (at most 63)'),
    url: z.url({ protocol: /^https?$/, error: 'must be an http(s) URL' }),
    /** HMAC secret; or `secretFile`, a file holding it (trailing newline ignored). */
    secret: z.string().min(16, 'must be at least 16 characters').optional(),
    secretFile: z.string().min(1).optional(),
    events: z.array(z.enum(SUBSCRIBABLE_EVENT_TYPES)).default([]),
    repositories: z.array(z.string().min(1).max(256)).default([]),
    tags: z.array(z.string().min(1).max(256)).default([]),
    headers: z.record(z.string(), z.string()).default({}),
    format: z.enum(WEBHOOK_FORMATS).default('native'),
    /** `active`, `paused` (events queue up) or `disabled` (events are dropped). */
    state: z.enum(SUBSCRIPTION_STATES).optional(),
    /** The older switch: false is `state: paused`. */
    active: z.boolean().default(true),
  })
  .strict()
  .refine((s) => (s.secret === undefined) !== (s.secretFile === undefined), {
    message: 'give exactly one of secret and secretFile',
  });

export type StaticSubscriptionConfig = z.infer<typeof staticSubscriptionSchema>;

export const webhooksConfigSchema = z
  .object({
    /** Run the dispatcher. When false, events still accumulate in the outbox and go out once enabled. */
    enabled: z.boolean().default(true),
    /** How often the dispatcher looks for new outbox events and due retries (it is also woken on every change). */
    pollIntervalMs: z.number().int().min(10).max(60_000).default(200),
    /** Per-request timeout: connect, send and read the response. */
    requestTimeoutMs: z.number().int().min(100).max(300_000).default(5_000),
    /**
     * Deliveries in flight at once to one endpoint (scheme://host:port), over keep-alive
     * connections; each (subscription, repository) lane has at most one, so this is how many
     * repositories' events one receiver gets in parallel.
     */
    maxInFlightPerEndpoint: z.number().int().min(1).max(256).default(32),
    /** Deliveries in flight at once in total. */
    maxInFlight: z.number().int().min(1).max(4096).default(64),
    /** Delay before the first retry; each further retry doubles it, with jitter. */
    initialBackoffMs: z.number().int().min(1).max(3_600_000).default(1_000),
    /** Longest delay between two attempts. */
    maxBackoffMs: z.number().int().min(1).max(86_400_000).default(300_000),
    /** Give up on a delivery this long after its first attempt (since queued or redelivered) and mark it failed. */
    maxAgeMs: z.number().int().min(1).max(30 * 86_400_000).default(86_400_000),
    /** Bytes of a response body read (and kept in the delivery log); the rest is discarded. */
    maxResponseBytes: z.number().int().min(0).max(65_536).default(2_048),
    /** Follow HTTP redirects. Off: a 3xx answer is a failed delivery. */
    followRedirects: z.boolean().default(false),
    /**
     * Destinations allowed, when non-empty: host names (`hooks.example.com`), wildcards
     * (`*.example.com`), IP addresses or CIDR ranges (`10.0.0.0/8`), checked against the
     * URL's host and every address it resolves to.
     */
    allowHosts: hostList.default([]),
    /** Destinations refused, in the same forms; wins over allowHosts. Default: link-local (cloud metadata). */
    denyHosts: hostList.default(['169.254.0.0/16', 'fe80::/10']),
    /** Prefix of CloudEvents `type` attributes: `<prefix>.tag.created`. */
    cloudEventsTypePrefix: z
      .string()
      .regex(/^[a-z0-9]+(?:[.-][a-z0-9]+)*$/, 'must be a reverse-DNS name such as io.example.container')
      .default('dev.harbormaster.container'),
    /** Delivered and failed deliveries (with their attempt log) are removed after this long. */
    retentionMs: z.number().int().min(60_000).default(14 * 86_400_000),
    /** Subscriptions declared here are created at startup, kept in step with this file, and read-only in the API. */
    subscriptions: z
      .array(staticSubscriptionSchema)
      .default([])
      .superRefine((subscriptions, ctx) => {
        const seen = new Set<string>();
        for (const [index, { id }] of subscriptions.entries()) {
          if (seen.has(id)) ctx.addIssue({ code: 'custom', path: [index, 'id'], message: `"${id}" is already the id of an earlier subscription` });
          seen.add(id);
        }
      }),
  })
  .strict()
  .prefault({});

export type WebhooksConfig = z.infer<typeof webhooksConfigSchema>;
