/**
 * Outbound HTTP for deliveries (undici): a per-request timeout, redirects not followed
 * unless configured, response bodies read only up to a small cap, and a destination policy
 * (allow/deny lists of host names, IP addresses and CIDR ranges) checked against the URL and
 * against every address its host resolves to, so DNS cannot smuggle a denied address in.
 */
import dns from 'node:dns';
import net from 'node:net';
import type { Readable } from 'node:stream';
import { Agent, request, type Dispatcher } from 'undici';
import { redactUrl, redactUrlsIn } from './redaction.js';

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
  /** How the refusal is recognised when the HTTP client re-wraps it (raised inside a DNS lookup). */
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

  /**
   * Checks one resolved (or literal) address of `host`, judged as every address it reaches: an
   * unspecified address (0.0.0.0, ::) as loopback, an IPv6 form carrying an IPv4 address
   * (IPv4-mapped, IPv4-compatible, NAT64 64:ff9b::/96, 6to4 2002::/16) as that IPv4 address.
   * Denied when any of them is denied; allowed when the name or any of them is allowed.
   */
  checkAddress(host: string, address: string): void {
    const reached = reachedAddresses(address);
    const shown = bareHost(address);
    for (const { ip, family } of reached) {
      if (this.deny.hasAddresses && this.deny.addresses.check(ip, family)) {
        throw new DestinationRefusedError(`destination ${host} (${shown}${ip === shown ? '' : `, which reaches ${ip}`}) is denied`);
      }
    }
    if (this.allowAll || matchesName(this.allow, host)) return;
    if (this.allow.hasAddresses && reached.some(({ ip, family }) => this.allow.addresses.check(ip, family))) return;
    throw new DestinationRefusedError(`destination ${host} (${shown}) is not in webhooks.allowHosts`);
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

type Reached = { ip: string; family: 'ipv4' | 'ipv6' };

/** The address itself and what it reaches (see {@link DestinationPolicy.checkAddress}). */
export function reachedAddresses(address: string): Reached[] {
  // A zone id (fe80::1%eth0) names an interface, not another address.
  const ip = bareHost(address).replace(/%.*$/, '');
  if (net.isIP(ip) === 4) return ip === '0.0.0.0' ? [{ ip, family: 'ipv4' }, ...LOOPBACK] : [{ ip, family: 'ipv4' }];
  const groups = ipv6Groups(ip);
  if (!groups) return [{ ip, family: 'ipv6' }];
  const self: Reached = { ip, family: 'ipv6' };
  if (groups.every((g) => g === 0)) return [self, ...LOOPBACK];
  const embedded = embeddedIPv4(groups);
  return embedded ? [self, ...reachedAddresses(embedded)] : [self];
}

const LOOPBACK: Reached[] = [
  { ip: '127.0.0.1', family: 'ipv4' },
  { ip: '::1', family: 'ipv6' },
];

/** The IPv4 address an IPv6 one carries, in the forms that carry one; null otherwise. */
function embeddedIPv4(groups: number[]): string | null {
  const dotted = (high: number, low: number) => `${high >> 8}.${high & 255}.${low >> 8}.${low & 255}`;
  const zeros = (from: number, to: number) => groups.slice(from, to).every((g) => g === 0);
  if (zeros(0, 5) && groups[5] === 0xffff) return dotted(groups[6]!, groups[7]!); // ::ffff:a.b.c.d, IPv4-mapped
  if (groups[0] === 0x64 && groups[1] === 0xff9b && zeros(2, 6)) return dotted(groups[6]!, groups[7]!); // 64:ff9b::/96, NAT64
  if (groups[0] === 0x2002) return dotted(groups[1]!, groups[2]!); // 2002::/16, 6to4
  if (zeros(0, 6) && !(groups[6] === 0 && groups[7]! <= 1)) return dotted(groups[6]!, groups[7]!); // ::a.b.c.d, IPv4-compatible
  return null;
}

/** The eight 16-bit groups of an IPv6 address (a zone id is ignored); null when it is not one. */
function ipv6Groups(address: string): number[] | null {
  const bare = address.replace(/%.*$/, '');
  if (net.isIP(bare) !== 6) return null;
  // The URL parser writes IPv6 canonically (hex groups, a trailing dotted IPv4 converted), leaving only `::` to expand.
  const canonical = new URL(`http://[${bare}]/`).hostname.slice(1, -1);
  const [head, tail] = canonical.includes('::') ? canonical.split('::') : [canonical, undefined];
  const parse = (part: string | undefined) => (part ? part.split(':').map((g) => parseInt(g, 16)) : []);
  const front = parse(head);
  const back = parse(tail);
  return [...front, ...new Array<number>(8 - front.length - back.length).fill(0), ...back];
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

/**
 * Posts deliveries. One instance holds the keep-alive connection pool and the destination policy.
 *
 * Why undici and not node-fetch (which the deploy agent uses): a delivery is a small POST, and
 * at a burst's rate the client's own per-request work is most of what a delivery costs. On
 * loopback with 32 in flight, node-fetch over node:http spent 1.04 ms of CPU per request
 * (Request, Headers, Body streams, a pipeline, the http parser), undici's `request` 0.36-0.45 ms.
 */
export class WebhookSender {
  private readonly agent: Agent;
  private readonly allowedUrls = new Set<string>();

  constructor(
    readonly policy: DestinationPolicy,
    private readonly options: SendOptions,
  ) {
    // The lookup hook refuses denied addresses at connect time (undici passes `connect` options
    // to net.connect / tls.connect). noDelay: headers and body may go out in two writes, and with
    // Nagle and the receiver's delayed ACK the second would wait up to 40 ms.
    this.agent = new Agent({ connect: { lookup: policy.lookup(), noDelay: true }, keepAliveTimeout: 30_000, connections: 64 });
  }

  /**
   * Posts one delivery. Redirects (when followed at all) are followed here, hop by hop, so each
   * hop is checked against the policy before connecting (a literal address too, which the
   * lookup hook never sees), and only within the subscription's origin (scheme, host, port):
   * the same POST (body, signatures, custom headers) goes to the new path, up to 5 hops. A
   * redirect to another origin is refused, so nothing signed or secret leaves for another host.
   */
  async post(url: string, headers: Record<string, string>, body: string): Promise<SendResult> {
    const started = performance.now();
    const elapsed = () => Math.round(performance.now() - started);
    let target: URL;
    try {
      target = new URL(url);
      if (!this.allowedUrls.has(url)) {
        this.policy.checkUrl(target);
        // The policy never changes for this sender: a URL allowed once is allowed (a backlog
        // posts to one URL thousands of times; the addresses it resolves to are still checked
        // on every new connection).
        if (this.allowedUrls.size >= ALLOWED_URLS_KEPT) this.allowedUrls.clear();
        this.allowedUrls.add(url);
      }
    } catch (error) {
      return failure(elapsed(), redactUrlsIn((error as Error).message), false);
    }
    // Credentials in the URL become Basic authentication, as curl sends them.
    if (target.username || target.password) {
      const credentials = `${decodeURIComponent(target.username)}:${decodeURIComponent(target.password)}`;
      if (!Object.keys(headers).some((name) => name.toLowerCase() === 'authorization')) {
        headers = { ...headers, Authorization: `Basic ${Buffer.from(credentials).toString('base64')}` };
      }
      target.username = '';
      target.password = '';
    }
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), this.options.timeoutMs);
    try {
      let response: Dispatcher.ResponseData;
      for (let hop = 0; ; hop++) {
        response = await request(target, { method: 'POST', headers, body, signal: controller.signal, dispatcher: this.agent });
        const location = headerOf(response, 'location');
        if (!this.options.followRedirects || !REDIRECTS.has(response.statusCode) || location === null) break;
        let next: URL;
        try {
          next = new URL(location, target);
        } catch {
          break;
        }
        const refusal = hop >= MAX_REDIRECTS ? `more than ${MAX_REDIRECTS} redirects` : next.origin !== target.origin ? 'redirect to another origin refused' : checkRefusal(this.policy, next);
        await readCapped(response.body, 0);
        if (refusal) return failure(elapsed(), `${refusal} (${response.statusCode} to ${redactUrl(next)})`, false, response.statusCode);
        target = next;
      }
      const responseBody = await readCapped(response.body, this.options.maxResponseBytes);
      const latencyMs = elapsed();
      const status = response.statusCode;
      const retryAfterSeconds = parseRetryAfter(headerOf(response, 'retry-after'));
      if (status >= 200 && status < 300) {
        return { status, latencyMs, error: null, responseBody, retryable: false, retryAfterSeconds: null };
      }
      const location = headerOf(response, 'location');
      const error = status >= 300 && status < 400 ? `redirect (${status}${location ? ` to ${redactUrlsIn(location)}` : ''}) not followed` : `HTTP ${status}`;
      return { status, latencyMs, error, responseBody, retryable: status >= 500 || status === 408 || status === 429, retryAfterSeconds };
    } catch (error) {
      const latencyMs = elapsed();
      if (controller.signal.aborted) return failure(latencyMs, `timed out after ${this.options.timeoutMs} ms`, true);
      const refused = findRefusal(error);
      if (refused) return failure(latencyMs, redactUrlsIn(refused.message), false);
      return failure(latencyMs, redactUrlsIn(describeNetworkError(error)), true);
    } finally {
      clearTimeout(timer);
    }
  }

  close(): void {
    void this.agent.destroy();
  }
}

/** One response header as a string (undici gives repeated headers as an array). */
function headerOf(response: Dispatcher.ResponseData, name: string): string | null {
  const value = response.headers[name];
  if (value === undefined) return null;
  return Array.isArray(value) ? (value[0] ?? null) : value;
}

const REDIRECTS = new Set([301, 302, 303, 307, 308]);
const ALLOWED_URLS_KEPT = 1_000;
const MAX_REDIRECTS = 5;

function failure(latencyMs: number, error: string, retryable: boolean, status: number | null = null): SendResult {
  return { status, latencyMs, error, responseBody: null, retryable, retryAfterSeconds: null };
}

function checkRefusal(policy: DestinationPolicy, url: URL): string | null {
  try {
    policy.checkUrl(url);
    return null;
  } catch (error) {
    if (error instanceof DestinationRefusedError) return error.message;
    throw error;
  }
}

/**
 * Reads at most `limit` bytes of a body; a body longer than that is dropped with its connection
 * (reading it out could take as long as the receiver likes).
 */
async function readCapped(body: Readable, limit: number): Promise<string | null> {
  const chunks: Buffer[] = [];
  let total = 0;
  try {
    for await (const chunk of body as AsyncIterable<Buffer>) {
      const room = limit - total;
      if (room > 0) chunks.push(chunk.subarray(0, room));
      total += chunk.length;
      if (total > limit) break;
    }
  } catch {
    // A body cut short still leaves what was read for the log.
  } finally {
    if (total > limit) body.destroy();
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
  for (let cause = error, depth = 0; cause instanceof Error && depth < 5; cause = cause.cause, depth++) {
    if (cause instanceof DestinationRefusedError) return cause;
    if ((cause as NodeJS.ErrnoException).code === REFUSED_CODE) return new DestinationRefusedError(cause.message);
  }
  return null;
}

function describeNetworkError(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const code = (error as NodeJS.ErrnoException).code;
  // undici names its own failures UND_ERR_*; a socket's errno code (ECONNREFUSED...) is more telling.
  return code && !code.startsWith('UND_ERR') && !error.message.includes(code) ? `${code}: ${error.message}` : error.message;
}
