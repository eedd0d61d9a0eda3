/**
 * Which registry host (and scheme) an event names, decided per event from the request that
 * made the change, never from process-wide state a request could set:
 * 1. `http.publicUrl`, when set, always;
 * 2. else the host that request addressed (validated `host[:port]`, see request-context.ts),
 *    when `http.allowedHosts` is empty or lists it;
 * 3. else the first `http.allowedHosts` entry (the registry's canonical name);
 * 4. else the address the server listens on, an unspecified one (`0.0.0.0`, `[::]`) read as
 *    `localhost`: the only name that reaches it for sure, from the machine itself.
 * Step 3 or 4 also names the registry's own changes (retention, GC, CLI) and pings.
 */
import type { RequestContext } from '../registry/ports.js';
import { normaliseRegistryHost } from '../registry/references.js';
import type { DeliveryContext } from './types.js';

export interface RegistryOrigin {
  /** host[:port], as clients name the registry in image references. */
  host: string;
  scheme: 'http' | 'https';
}

export interface OriginSettings {
  publicUrl?: string;
  allowedHosts: readonly string[];
  /** `http.addr`, the configured listen address (host:port). */
  listenAddress: string;
  /** Whether the server speaks HTTPS (http.tls). */
  tls: boolean;
}

export class EventOrigins {
  private readonly fixed: RegistryOrigin | null;
  private readonly allowed: Array<{ name: string; port: string | null }>;
  private fallback: RegistryOrigin;

  constructor(private readonly settings: OriginSettings) {
    this.fixed = settings.publicUrl ? originOfUrl(settings.publicUrl) : null;
    this.allowed = settings.allowedHosts.map(splitHost);
    this.fallback = this.fallbackFor(settings.listenAddress);
  }

  /** Once the server listens: its real address (a configured port 0 becomes the one bound). */
  listening(url: string): void {
    this.fallback = this.fallbackFor(new URL(url).host);
  }

  /** The origin an event names, given the request that made its change (null: none). */
  of(request: RequestContext | null | undefined): RegistryOrigin {
    if (this.fixed) return this.fixed;
    const host = normaliseRegistryHost(request?.host);
    if (request && host && this.isAllowed(host)) return { host, scheme: request.scheme };
    return this.fallback;
  }

  private isAllowed(host: string): boolean {
    if (this.allowed.length === 0) return true;
    const { name, port } = splitHost(host);
    return this.allowed.some((entry) => entry.name === name && (entry.port === null || entry.port === port));
  }

  private fallbackFor(listenAddress: string): RegistryOrigin {
    const scheme = this.settings.tls ? 'https' : 'http';
    const first = this.settings.allowedHosts[0];
    if (first !== undefined) return { host: normaliseRegistryHost(first) ?? first, scheme };
    const { name, port } = splitHost(listenAddress);
    const unspecified = name === '' || name === '0.0.0.0' || name === '[::]' || name === '::';
    return { host: `${unspecified ? 'localhost' : name}${port === null ? '' : `:${port}`}`, scheme };
  }
}

/** What a delivery keeps of its origin and request for the formats that report them. */
export function deliveryContextOf(origin: RegistryOrigin, request: RequestContext | null | undefined): DeliveryContext {
  return { scheme: origin.scheme, request: request ? { id: request.id, addr: request.addr, userAgent: request.userAgent, method: request.method } : null };
}

function originOfUrl(url: string): RegistryOrigin {
  const parsed = new URL(url);
  return { host: parsed.host, scheme: parsed.protocol === 'https:' ? 'https' : 'http' };
}

/** `name[:port]` split at its last colon outside brackets. */
function splitHost(value: string): { name: string; port: string | null } {
  const match = /^(\[[^\]]*\]|[^:]*)(?::(\d+))?$/.exec(value.toLowerCase());
  if (!match) return { name: value.toLowerCase(), port: null };
  return { name: match[1]!, port: match[2] ?? null };
}
