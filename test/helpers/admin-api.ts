/** Calls the admin API (/api/v1) of a registry process as `admin` with HTTP Basic. */
import assert from 'node:assert/strict';
import type { ServerProcess } from './server-process.js';

/** Returns a caller that sends JSON and asserts a 2xx answer, returning the parsed body. */
export function adminApi(server: ServerProcess, adminPassword: string): (method: string, route: string, body: unknown) => Promise<unknown> {
  const authorization = `Basic ${Buffer.from(`admin:${adminPassword}`).toString('base64')}`;
  return async (method, route, body) => {
    const res = await fetch(`${server.url}${route}`, {
      method,
      headers: { Authorization: authorization, 'Content-Type': 'application/json' },
      body: JSON.stringify(body),
      signal: AbortSignal.timeout(10_000),
    });
    const text = await res.text();
    assert.ok(res.ok, `${method} ${route}: ${res.status} ${text}`);
    return JSON.parse(text) as unknown;
  };
}
