/**
 * Outbound HTTP for deliveries (node-fetch): a per-request timeout, redirects not followed
 * unless configured, response bodies read only up to a small cap, and a destination policy
 * (allow/deny lists of host names, IP addresses and CIDR ranges) checked against the URL and
 * against every address its host resolves to, so DNS cannot smuggle a denied address in.
 */
import dns from 'node:dns';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import fetch, { FetchError } from 'node-fetch';

export interface DestinationPolicyOptions {
  allowHosts: readonly string[];
  denyHosts: readonly string[];
}

interface HostRules {
  names: RegExp[];
  addresses: net.BlockList;
  hasAddresses: boolean;
}

const REFUSED_CODE = 'EWEBHOOKDESTINATION';

/** Refusal of a destination by the policy (never retried). */
export class DestinationRefusedError extends Error {
  /** Carried through node-fetch's FetchError when raised inside a DNS lookup. */
  readonly code = REFUSED_CODE;

  constructor(message: string) {
    super(message);
    this.name = 'DestinationRefusedError';
  }
}

/** The allow/deny lists, compiled. */
export class DestinationPolicy {
  private readonly allow: HostRules;
  private readonly deny: HostRules;
  private readonly allowAll: boolean;

  constructor(options: DestinationPolicyOptions) {
    this.allow = compileRules(options.allowHosts);
    this.deny = compileRules(options.denyHosts);
    this.allowAll = options.allowHosts.length === 0;
  }

  /** Checks a URL before any connection: its scheme and its host (name, or literal address). */
  checkUrl(url: URL): void {
    if (url.protocol !== 'http:' && url.protocol !== 'https:') {
      throw new DestinationRefusedError(`only http and https destinations are allowed, not ${url.protocol}`);
    }
    const host = bareHost(url.hostname);
    if (net.isIP(host)) {
      this.checkAddress(host, host);
      return;
    }
    if (matchesName(this.deny, host)) throw new DestinationRefusedError(`destination host ${host} is denied`);
  }

  /** Checks one resolved (or literal) address of `host`. */
  checkAddress(host: string, address: string): void {
    const ip = normaliseAddress(address);
    const family = net.isIP(ip) === 6 ? 'ipv6' : 'ipv4';
    if (this.deny.hasAddresses && this.deny.addresses.check(ip, family)) {
      throw new DestinationRefusedError(`destination ${host} (${ip}) is denied`);
    }
    if (this.allowAll || matchesName(this.allow, host)) return;
    if (this.allow.hasAddresses && this.allow.addresses.check(ip, family)) return;
    throw new DestinationRefusedError(`destination ${host} (${ip}) is not in webhooks.allowHosts`);
  }

  /** A dns.lookup replacement that refuses denied addresses at connect time. */
  lookup(): net.LookupFunction {
    return (hostname, options, callback) => {
      dns.lookup(hostname, { ...options, all: true }, (error, addresses) => {
        if (error) {
          (callback as (err: NodeJS.ErrnoException | null, address: string, family: number) => void)(error, '', 0);
          return;
        }
        try {
          for (const entry of addresses) this.checkAddress(bareHost(hostname), entry.address);
        } catch (refusal) {
          (callback as (err: NodeJS.ErrnoException | null, address: string, family: number) => void)(
            refusal as NodeJS.ErrnoException,
            '',
            0,
          );
          return;
        }
        if (options.all) {
          (callback as (err: NodeJS.ErrnoException | null, addresses: dns.LookupAddress[]) => void)(null, addresses);
        } else {
          const first = addresses[0]!;
          (callback as (err: NodeJS.ErrnoException | null, address: string, family: number) => void)(null, first.address, first.family);
        }
      });
    };
  }
}

type HostRule = { kind: 'subnet'; address: string; prefix: number; family: 'ipv4' | 'ipv6' } | { kind: 'address'; address: string; family: 'ipv4' | 'ipv6' } | { kind: 'name'; pattern: RegExp };

/** Parses one allow/deny entry: a host name, `*.domain`, an IP address or a CIDR range. */
export function parseHostRule(raw: string): HostRule {
  const entry = raw.trim().toLowerCase();
  const cidr = /^(.+)\/(\d{1,3})$/.exec(entry);
  if (cidr && net.isIP(bareHost(cidr[1]!))) {
    const address = bareHost(cidr[1]!);
    const family = net.isIP(address) === 6 ? 'ipv6' : 'ipv4';
    const prefix = Number(cidr[2]);
    if (prefix > (family === 'ipv6' ? 128 : 32)) throw new Error(`invalid host rule ${JSON.stringify(raw)}: prefix too long`);
    return { kind: 'subnet', address, prefix, family };
  }
  if (net.isIP(bareHost(entry))) {
    const address = bareHost(entry);
    return { kind: 'address', address, family: net.isIP(address) === 6 ? 'ipv6' : 'ipv4' };
  }
  if (/^(\*\.)?[a-z0-9_-]+(\.[a-z0-9_-]+)*$/.test(entry)) {
    const wildcard = entry.startsWith('*.');
    const base = (wildcard ? entry.slice(2) : entry).replace(/\./g, '\\.');
    return { kind: 'name', pattern: new RegExp(`^${wildcard ? '(?:[a-z0-9_-]+\\.)+' : ''}${base}$`) };
  }
  throw new Error(`invalid host rule ${JSON.stringify(raw)}: use a host name, *.domain, an IP address or a CIDR range`);
}

function compileRules(entries: readonly string[]): HostRules {
  const rules: HostRules = { names: [], addresses: new net.BlockList(), hasAddresses: false };
  for (const entry of entries) {
    const rule = parseHostRule(entry);
    if (rule.kind === 'name') {
      rules.names.push(rule.pattern);
    } else {
      if (rule.kind === 'subnet') rules.addresses.addSubnet(rule.address, rule.prefix, rule.family);
      else rules.addresses.addAddress(rule.address, rule.family);
      rules.hasAddresses = true;
    }
  }
  return rules;
}

function matchesName(rules: HostRules, host: string): boolean {
  const lower = host.toLowerCase().replace(/\.$/, '');
  return rules.names.some((rule) => rule.test(lower));
}

function bareHost(host: string): string {
  return host.replace(/^\[(.*)\]$/, '$1');
}

/** `::ffff:10.0.0.1` is 10.0.0.1 for the purpose of the lists. */
function normaliseAddress(address: string): string {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  return mapped ? mapped[1]! : address;
}

export interface SendOptions {
  timeoutMs: number;
  maxResponseBytes: number;
  followRedirects: boolean;
}

export interface SendResult {
  /** HTTP status, or null when no response came (timeout, refused connection, refused destination). */
  status: number | null;
  latencyMs: number;
  /** Why the attempt failed; null on a 2xx. */
  error: string | null;
  responseBody: string | null;
  /** Whether trying again may help (5xx, 408, 429, timeouts, network errors). */
  retryable: boolean;
  /** Seconds from a Retry-After header, when the receiver gave one. */
  retryAfterSeconds: number | null;
}

/** Posts deliveries. One instance holds the keep-alive agents and the destination policy. */
export class WebhookSender {
  private readonly httpAgent: http.Agent;
  private readonly httpsAgent: https.Agent;

  constructor(
    readonly policy: DestinationPolicy,
    private readonly options: SendOptions,
  ) {
    const lookup = policy.lookup();
    this.httpAgent = new http.Agent({ keepAlive: true, lookup });
    this.httpsAgent = new https.Agent({ keepAlive: true, lookup });
  }

  async post(url: string, headers: Record<string, string>, body: string): Promise<SendResult> {
    const started = performance.now();
    const elapsed = () => Math.round(performance.now() - started);
    let target: URL;
    try {
      target = new URL(url);
      this.policy.checkUrl(target);
    } catch (error) {
      return failure(elapsed(), (error as Error).message, false);
    }
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), this.options.timeoutMs);
    try {
      const response = await fetch(target, {
        method: 'POST',
        headers,
        body,
        redirect: this.options.followRedirects ? 'follow' : 'manual',
        follow: 5,
        compress: false,
        signal: controller.signal,
        agent: (parsed: URL) => (parsed.protocol === 'https:' ? this.httpsAgent : this.httpAgent),
      });
      const responseBody = await readCapped(response.body, this.options.maxResponseBytes);
      const latencyMs = elapsed();
      const status = response.status;
      const retryAfterSeconds = parseRetryAfter(response.headers.get('retry-after'));
      if (status >= 200 && status < 300) {
        return { status, latencyMs, error: null, responseBody, retryable: false, retryAfterSeconds: null };
      }
      const error =
        status >= 300 && status < 400
          ? `redirect (${status}${response.headers.get('location') ? ` to ${response.headers.get('location')}` : ''}) not followed`
          : `HTTP ${status}`;
      return { status, latencyMs, error, responseBody, retryable: status >= 500 || status === 408 || status === 429, retryAfterSeconds };
    } catch (error) {
      const latencyMs = elapsed();
      if (controller.signal.aborted) return failure(latencyMs, `timed out after ${this.options.timeoutMs} ms`, true);
      const refused = findRefusal(error);
      if (refused) return failure(latencyMs, refused.message, false);
      return failure(latencyMs, describeNetworkError(error), true);
    } finally {
      clearTimeout(timer);
    }
  }

  close(): void {
    this.httpAgent.destroy();
    this.httpsAgent.destroy();
  }
}

function failure(latencyMs: number, error: string, retryable: boolean): SendResult {
  return { status: null, latencyMs, error, responseBody: null, retryable, retryAfterSeconds: null };
}

/** Reads at most `limit` bytes of a body, then drops the connection's remaining bytes. */
async function readCapped(body: NodeJS.ReadableStream | null, limit: number): Promise<string | null> {
  if (!body) return null;
  const chunks: Buffer[] = [];
  let total = 0;
  const stream = body as NodeJS.ReadableStream & { destroy?: () => void };
  try {
    for await (const chunk of stream) {
      const buffer = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk as string);
      const room = limit - total;
      if (room > 0) chunks.push(buffer.subarray(0, room));
      total += buffer.length;
      if (total >= limit) break;
    }
  } catch {
    // A body cut short still leaves what was read for the log.
  } finally {
    if (total >= limit) stream.destroy?.();
  }
  if (total === 0) return null;
  return Buffer.concat(chunks).toString('utf8');
}

function parseRetryAfter(value: string | null): number | null {
  if (!value) return null;
  if (/^\d+$/.test(value.trim())) return Number(value.trim());
  const date = Date.parse(value);
  return Number.isNaN(date) ? null : Math.max(0, Math.round((date - Date.now()) / 1000));
}

function findRefusal(error: unknown): DestinationRefusedError | null {
  if (error instanceof DestinationRefusedError) return error;
  if (error instanceof FetchError && error.code === REFUSED_CODE) {
    return new DestinationRefusedError(error.message.replace(/^request to \S+ failed, reason: /, ''));
  }
  return null;
}

function describeNetworkError(error: unknown): string {
  if (error instanceof FetchError) {
    return error.code ? `${error.code}: ${error.message.replace(/^request to \S+ failed, reason: /, '')}` : error.message;
  }
  return error instanceof Error ? error.message : String(error);
}
