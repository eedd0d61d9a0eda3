/**
 * Support for the attack tests: an assembled app served on a real loopback socket (so that
 * requests can come from many 127.0.0.0/8 source addresses, hold connections open and send
 * bodies slowly), a request helper with a bounded wait, and a bounded pool of tasks.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Express } from 'express';

export interface Served {
  port: number;
  url: string;
  server: http.Server;
  close(): Promise<void>;
}

/** Serves `app` on 127.0.0.1 on a random port. */
export async function serve(app: Express | http.RequestListener): Promise<Served> {
  const server = http.createServer(app as http.RequestListener);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  return {
    port,
    url: `http://127.0.0.1:${port}`,
    server,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

export interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

/** One request over a real socket (optionally from a given loopback source address); rejects after `timeoutMs`. */
export function send(
  port: number,
  options: { method?: string; path: string; headers?: Record<string, string>; body?: Buffer | string; localAddress?: string; agent?: http.Agent; timeoutMs?: number },
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host: '127.0.0.1', port, method: options.method ?? 'GET', path: options.path, headers: options.headers, localAddress: options.localAddress, agent: options.agent },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (body += chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
        res.on('error', reject);
      },
    );
    req.setTimeout(options.timeoutMs ?? 30_000, () => req.destroy(new Error(`no answer to ${options.method ?? 'GET'} ${options.path} within ${options.timeoutMs ?? 30_000} ms`)));
    req.on('error', reject);
    req.end(options.body);
  });
}

/** Runs `tasks` with at most `concurrency` at a time; resolves with their results in order. */
export async function runPool<T>(tasks: Array<() => Promise<T>>, concurrency: number): Promise<T[]> {
  const results: T[] = new Array(tasks.length);
  let next = 0;
  const worker = async () => {
    while (next < tasks.length) {
      const index = next++;
      results[index] = await tasks[index]!();
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, tasks.length) }, worker));
  return results;
}
