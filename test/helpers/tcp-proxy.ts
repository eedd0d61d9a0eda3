/**
 * A loopback TCP proxy in front of a server (a registry, or the object store), counting what
 * passes: the bytes clients send (the benchmark's "bytes uploaded", measured the same way for
 * either registry without trusting its own bookkeeping), the bytes answered, and the
 * connections open. It can also cut every connection once it has answered a given number of
 * bytes, as a server or network failing part-way through a response, cut the server off
 * altogether (open connections dropped, new ones refused), or stall (new connections accepted
 * and never answered, open ones answered nothing more, as a hung server), until restored.
 */
import net from 'node:net';

export interface TcpProxy {
  host: string;
  /** Bytes sent by clients to the server since the last reset. */
  uploaded(): number;
  /** Bytes the server answered since the last reset. */
  downloaded(): number;
  /** Connections open now. */
  connections(): number;
  reset(): void;
  /** From now on, drop each connection once it has answered this many bytes (null: never). */
  cutAfter(bytes: number | null): void;
  /** Drops every open connection and, until restore(), every new one at once. */
  cut(): void;
  /** Until restore(), new connections are accepted and never answered, and what the server answers on open ones is withheld. */
  stall(): void;
  /** Passes new connections through again. */
  restore(): void;
  close(): Promise<void>;
}

/** `target`: host:port of the server. */
export async function startTcpProxy(target: string): Promise<TcpProxy> {
  const [targetHost, targetPort] = [target.slice(0, target.lastIndexOf(':')), Number(target.slice(target.lastIndexOf(':') + 1))];
  let uploaded = 0;
  let downloaded = 0;
  let cut: number | null = null;
  let mode: 'pass' | 'cut' | 'stall' = 'pass';
  const clients = new Set<net.Socket>();
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    if (mode === 'cut') return void client.destroy();
    if (mode === 'stall') {
      sockets.add(client);
      client.on('error', () => undefined).on('close', () => sockets.delete(client));
      return;
    }
    const upstream = net.connect(targetPort, targetHost);
    clients.add(client);
    sockets.add(client).add(upstream);
    let answered = 0;
    client.on('data', (chunk: Buffer) => (uploaded += chunk.length));
    client.pipe(upstream);
    upstream.on('data', (chunk: Buffer) => {
      if (mode === 'stall') return;
      const allowed = cut === null ? chunk.length : Math.max(0, Math.min(chunk.length, cut - answered));
      answered += allowed;
      downloaded += allowed;
      if (allowed > 0 && !client.write(allowed === chunk.length ? chunk : chunk.subarray(0, allowed))) {
        upstream.pause();
        client.once('drain', () => upstream.resume());
      }
      if (allowed < chunk.length) drop();
    });
    upstream.on('end', () => client.end());
    const drop = () => {
      client.destroy();
      upstream.destroy();
      clients.delete(client);
      sockets.delete(client);
      sockets.delete(upstream);
    };
    client.on('error', drop).on('close', drop);
    upstream.on('error', drop).on('close', drop);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    host: `127.0.0.1:${(server.address() as net.AddressInfo).port}`,
    uploaded: () => uploaded,
    downloaded: () => downloaded,
    connections: () => clients.size,
    reset: () => {
      uploaded = 0;
      downloaded = 0;
    },
    cutAfter: (bytes) => (cut = bytes),
    cut: () => {
      mode = 'cut';
      for (const socket of sockets) socket.destroy();
    },
    stall: () => (mode = 'stall'),
    restore: () => (mode = 'pass'),
    close: () =>
      new Promise((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}
