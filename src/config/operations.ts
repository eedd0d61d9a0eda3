/**
 * Settings of the operations surface: TLS, the reverse-proxy trust, graceful shutdown, the
 * metrics endpoint and image import. Kept here so schema.ts only wires them in.
 */
import net from 'node:net';
import { z } from 'zod';
import { parseSize } from './lifecycle.js';

const GiB = 1024 ** 3;

/** Named address ranges express (proxy-addr) understands besides IPs and CIDR ranges. */
const PROXY_RANGE_NAMES = new Set(['loopback', 'linklocal', 'uniquelocal']);

function proxyAddressProblem(entry: string): string | null {
  if (PROXY_RANGE_NAMES.has(entry)) return null;
  const [address, bits, extra] = entry.split('/');
  if (extra !== undefined || !address) return `${JSON.stringify(entry)} is not an IP address, CIDR range, loopback, linklocal or uniquelocal`;
  const family = net.isIP(address);
  if (family === 0) return `${JSON.stringify(entry)} is not an IP address, CIDR range, loopback, linklocal or uniquelocal`;
  if (bits !== undefined && !(/^\d{1,3}$/.test(bits) && Number(bits) <= (family === 4 ? 32 : 128))) {
    return `${JSON.stringify(entry)} has an invalid prefix length`;
  }
  return null;
}

/** `true`, `false`, a hop count, or addresses (a list, or one comma-separated string as in REGISTRY_HTTP_TRUST_PROXY). */
const trustProxySchema = z
  .union([
    z.boolean(),
    z.number().int().nonnegative(),
    z.string().transform((text) => text.split(/[\s,]+/).filter(Boolean)),
    z.array(z.string().trim()),
  ], { error: 'must be true, false, a number of proxy hops, or proxy addresses (IP, CIDR, loopback, linklocal, uniquelocal)' })
  .superRefine((value, ctx) => {
    if (!Array.isArray(value)) return;
    if (value.length === 0) ctx.addIssue({ code: 'custom', message: 'name at least one proxy address, or use true/false' });
    for (const entry of value) {
      const problem = proxyAddressProblem(entry);
      if (problem) ctx.addIssue({ code: 'custom', message: problem });
    }
  })
  .describe('Trust X-Forwarded-Proto/-Host/-For from a reverse proxy: false, true (any), a hop count, or proxy addresses/CIDR ranges');

const sizeSchema = z.union([
  z.number().int().positive(),
  z.string().transform((text, ctx) => {
    const bytes = parseSize(text);
    if (bytes === null || bytes <= 0) {
      ctx.addIssue({ code: 'custom', message: 'must be a number of bytes or a size such as 500MB, 10GiB' });
      return z.NEVER;
    }
    return bytes;
  }),
], { error: 'must be a number of bytes or a size such as 500MB, 10GiB' });

const tlsSchema = z
  .object({
    /** PEM certificate chain file (server certificate first, then intermediates). */
    certificate: z.string().min(1, 'must not be empty').optional().describe('PEM certificate chain file; reloaded on SIGHUP'),
    /** PEM private key file of that certificate. */
    key: z.string().min(1, 'must not be empty').optional().describe('PEM private key file; reloaded on SIGHUP'),
  })
  .strict()
  .superRefine((tls, ctx) => {
    if ((tls.certificate === undefined) !== (tls.key === undefined)) {
      ctx.addIssue({
        code: 'custom',
        path: [tls.certificate === undefined ? 'certificate' : 'key'],
        message: 'set both http.tls.certificate and http.tls.key (or neither, for plain HTTP)',
      });
    }
  })
  .prefault({});

/** Keys added to the `http` section. */
export const httpOperationsShape = {
  /** Serve HTTPS with this certificate and key (both, or neither for plain HTTP). */
  tls: tlsSchema,
  /** Trust X-Forwarded-* headers from a reverse proxy (express `trust proxy`). */
  trustProxy: trustProxySchema.default(false),
  /** On SIGTERM/SIGINT, how long requests in flight may take to finish before connections are cut. */
  shutdownTimeoutSeconds: z.number().nonnegative().default(30).describe('Seconds requests in flight may take to finish on SIGTERM/SIGINT'),
  /** A request body (a layer upload) that sends nothing for this long is aborted and its connection closed. */
  bodyIdleTimeoutSeconds: z
    .number()
    .positive()
    .max(3600)
    .default(60)
    .describe('Seconds a request body may send nothing before the request is aborted (nginx: client_body_timeout)'),
};

export const metricsConfigSchema = z
  .object({
    /** Serve Prometheus metrics at /metrics. */
    enabled: z.boolean().default(true).describe('Serve Prometheus metrics at /metrics'),
    /** Require admin credentials (Basic or an admin token) for /metrics; needs auth.mode token. */
    requireAuth: z.boolean().default(false).describe('Require admin credentials for /metrics (needs auth.mode token)'),
  })
  .strict()
  .prefault({});

export const importConfigSchema = z
  .object({
    /** Largest archive accepted by POST /api/v1/import: bytes or a size such as 10GiB. */
    maxBytes: sizeSchema.default(10 * GiB).describe('Largest archive POST /api/v1/import accepts (bytes, or e.g. 10GiB)'),
  })
  .strict()
  .prefault({});

export type MetricsConfig = z.infer<typeof metricsConfigSchema>;
export type ImportConfig = z.infer<typeof importConfigSchema>;
export type TrustProxySetting = z.infer<typeof trustProxySchema>;
