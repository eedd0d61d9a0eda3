/**
 * Secrets a subscription carries besides its HMAC key (custom header values such as
 * X-Webhook-Secret or Authorization, URL credentials, query values such as `?secret=`) are
 * write-only: the API, the CLI, delivery logs (`lastError`) and server logs show them as `***`.
 */
export const REDACTED = '***';

/** A URL with its userinfo and every query value replaced by `***` (the path and parameter names stay). */
export function redactUrl(url: string | URL): string {
  let parsed: URL;
  try {
    parsed = typeof url === 'string' ? new URL(url) : url;
  } catch {
    return '(invalid url)';
  }
  const userinfo = parsed.username || parsed.password ? `${REDACTED}@` : '';
  const query = [...parsed.searchParams.keys()].map((name) => `${encodeURIComponent(name)}=${REDACTED}`).join('&');
  return `${parsed.protocol}//${userinfo}${parsed.host}${parsed.pathname}${query ? `?${query}` : ''}`;
}

/** Every http(s) URL inside a text (an error message, a Location) redacted. */
export function redactUrlsIn(text: string): string {
  return text.replace(/\bhttps?:\/\/[^\s"'<>]*[^\s"'<>),.;]/gi, (url) => redactUrl(url));
}

/** Header names kept, values shown as `***`. */
export function redactHeaders(headers: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.keys(headers).map((name) => [name, REDACTED]));
}

/**
 * A change sent back with redacted values (as read from the API) keeps what is stored: a header
 * whose value is `***` keeps its stored value, and a URL equal to the stored one's redacted form
 * keeps the stored URL.
 */
export function keepRedacted<T extends { url?: string; headers?: Record<string, string> }>(patch: T, current: { url: string; headers: Record<string, string> }): T {
  const kept = { ...patch };
  if (kept.url !== undefined && kept.url === redactUrl(current.url)) kept.url = current.url;
  if (kept.headers) {
    kept.headers = Object.fromEntries(Object.entries(kept.headers).map(([name, value]) => [name, value === REDACTED && name in current.headers ? current.headers[name]! : value]));
  }
  return kept;
}
