/**
 * The configuration schema (zod): every option, its type and its default. Unknown keys are
 * errors, so a typo never silently falls back to a default.
 */
import { z } from 'zod';
import { authConfigSchema } from '../auth/config.js';
import { normaliseRegistryHost } from '../registry/references.js';
import { webhooksConfigSchema } from '../webhooks/config.js';
import { lifecycleConfigSchema } from './lifecycle.js';
import { metadataConfigSchema } from './metadata.js';
import { storageConfigSchema } from './storage.js';
import { httpOperationsShape, importConfigSchema, metricsConfigSchema } from './operations.js';
import { uiConfigSchema } from './ui.js';

const HOST_PORT = /^(\[[0-9a-fA-F:.]+\]|[^\s:/]*):(\d{1,5})$/;
const MiB = 1024 * 1024;

/** A list of `host[:port]`, as a YAML sequence or one comma-separated string (REGISTRY_HTTP_ALLOWED_HOSTS). */
const allowedHostsSchema = z
  .preprocess(
    (value) => (typeof value === 'string' ? value.split(',').map((entry) => entry.trim()).filter((entry) => entry !== '') : value),
    z.array(z.string().refine((entry) => normaliseRegistryHost(entry) !== null, 'must be a host name or address with an optional :port')),
  )
  .default([]);

/** A `host:port` listen address (`[::1]:5000` for IPv6; an empty host listens everywhere). The agent's too. */
export function listenAddressSchema(example: string) {
  return z
    .string()
    .regex(HOST_PORT, `must be host:port, e.g. ${example}`)
    .refine((addr) => Number(HOST_PORT.exec(addr)?.[2]) <= 65535, 'port must be at most 65535');
}

export const configSchema = z
  .object({
    http: z
      .object({
        /** host:port to listen on; `[::1]:5000` for IPv6. */
        addr: listenAddressSchema('0.0.0.0:5000').default('0.0.0.0:5000'),
        /**
         * The registry's public base URL (https://registry.example.com), used where an absolute
         * address must be given out (token realm, webhook payloads). Unset: derived from requests.
         */
        publicUrl: z.url({ protocol: /^https?$/, error: 'must be an http(s) URL' }).optional(),
        /**
         * Hosts (`name` or `name:port`) webhook events may name when publicUrl is unset: a change
         * made through another host name is reported under the first entry. Empty: any host the
         * request addressed (docs/webhooks.md, "Which host events name").
         */
        allowedHosts: allowedHostsSchema,
        /** TLS, reverse-proxy trust, shutdown deadline (config/operations.ts). */
        ...httpOperationsShape,
      })
      .strict()
      .prefault({}),
    storage: storageConfigSchema,
    metadata: metadataConfigSchema,
    api: z
      .object({
        /** Answer HEAD for a blob held in another repository the caller may pull by linking it. */
        linkKnownBlobsOnHead: z.boolean().default(true),
        /** Largest manifest accepted, in bytes. */
        maxManifestBytes: z.number().int().positive().default(4 * MiB),
        /** Catalog page size when the client gives no `n`. */
        catalogPageSize: z.number().int().positive().default(100),
        /** Largest page served for tags and catalog. */
        maxPageSize: z.number().int().positive().default(10_000),
      })
      .strict()
      .prefault({}),
    auth: authConfigSchema,
    webhooks: webhooksConfigSchema,
    lifecycle: lifecycleConfigSchema,
    log: z
      .object({
        level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
      })
      .strict()
      .prefault({}),
    metrics: metricsConfigSchema,
    import: importConfigSchema,
    ui: uiConfigSchema,
  })
  .strict()
  .superRefine((config, ctx) => {
    if (config.metrics.requireAuth && config.auth.mode === 'none') {
      ctx.addIssue({ code: 'custom', path: ['metrics', 'requireAuth'], message: 'needs auth.mode token (there are no admin credentials with auth.mode none)' });
    }
  });

export type Config = z.infer<typeof configSchema>;
export type ConfigInput = z.input<typeof configSchema>;
