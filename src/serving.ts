/**
 * The listening socket: plain HTTP or HTTPS from certificate and key files (re-read on demand,
 * e.g. on SIGHUP, without dropping connections: `setSecureContext` only affects new TLS
 * handshakes), and a graceful shutdown that stops accepting, lets requests in flight finish up
 * to a deadline, and closes keep-alive connections as they fall idle.
 */
import { X509Certificate } from 'node:crypto';
import fs from 'node:fs/promises';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import tls from 'node:tls';
import type { Logger } from 'pino';
import { abortIdleBodies, answerClientErrors } from './http/connection-guards.js';
import type { AppServing } from './http/listener.js';
import type net from 'node:net';

/** Shared with the request observer: while closing, responses ask clients to close the connection. */
export interface ServingState {
  closing: boolean;
}

export interface TlsFiles {
  /** PEM certificate chain (server certificate first). */
  certificate: string;
  /** PEM private key. */
  key: string;
}

export interface ServeOptions {
  addr: string;
  tls?: TlsFiles;
  logger: Logger;
  state: ServingState;
  /** A request body that sends nothing for this long is aborted (`http.bodyIdleTimeoutSeconds`). */
  bodyIdleTimeoutMs: number;
}

export interface Listening {
  server: http.Server | https.Server;
  address: AddressInfo;
  /** http(s)://host:port as bound. */
  url: string;
  /** Stops accepting; resolves once every connection is closed (cut at the deadline). */
  shutdown(deadlineMs: number): Promise<void>;
  /** Re-reads the certificate and key for new handshakes; false without TLS; rejects (keeping the old ones) when they are unusable. */
  reloadTls(): Promise<boolean>;
}

/** Certificates expiring sooner than this are warned about at start and on reload. */
const EXPIRY_WARNING_MS = 14 * 24 * 3600 * 1000;
/** Largest request head (request line and headers) accepted; larger ones get 431. */
const MAX_HEADER_BYTES = 64 * 1024;
/** How often idle keep-alive connections are closed during a shutdown. */
const IDLE_SWEEP_MS = 50;

export function parseListenAddress(addr: string): { host: string; port: number } {
  const index = addr.lastIndexOf(':');
  const host = addr.slice(0, index).replace(/^\[(.*)\]$/, '$1');
  return { host: host === '' ? '0.0.0.0' : host, port: Number(addr.slice(index + 1)) };
}

/**
 * SIGTERM and SIGINT stop the process gracefully: the first logs `message` (with `fields`),
 * runs `close`, logs `shutdown complete` with how long it took and exits 0 (1 when closing
 * fails); a second exits 1 at once. Shared by the registry and the deploy agent.
 */
export function closeOnSignals(logger: Logger, close: () => Promise<void>, message: string, fields: Record<string, unknown> = {}): void {
  let stopping = false;
  const stop = (signal: NodeJS.Signals) => {
    if (stopping) {
      logger.warn({ signal }, 'second signal: exiting at once');
      process.exit(1);
    }
    stopping = true;
    logger.info({ signal, ...fields }, message);
    const started = Date.now();
    close().then(
      () => {
        logger.info({ signal, durationMs: Date.now() - started }, 'shutdown complete');
        process.exit(0);
      },
      (error: unknown) => {
        logger.error({ err: error }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

/** Listens on a `host:port` address (`[::1]:5000` for IPv6); resolves with the base URL actually bound. */
export async function listenOn(server: net.Server, addr: string, scheme: 'http' | 'https'): Promise<string> {
  const { host, port } = parseListenAddress(addr);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address() as AddressInfo;
  const urlHost = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  return `${scheme}://${urlHost}:${address.port}`;
}

export async function startHttpServer(app: AppServing, options: ServeOptions): Promise<Listening> {
  const { logger, state } = options;
  const serverOptions = {
    keepAliveTimeout: 65_000,
    // Node's default of 16 KiB is too small for the Range header of a partial pull of 1024 chunks
    // (containers-storage's zstd:chunked, about 20 KiB); Go, and so distribution, allows 1 MiB.
    maxHeaderSize: MAX_HEADER_BYTES,
    IncomingMessage: app.IncomingMessage,
    ServerResponse: app.ServerResponse,
  };
  let server: http.Server | https.Server;
  if (options.tls) {
    const material = await readTlsFiles(options.tls);
    server = https.createServer({ ...serverOptions, ...material }, app.listener);
    describeCertificate(logger, material.cert, 'TLS certificate loaded');
  } else {
    server = http.createServer(serverOptions, app.listener);
  }
  // Layers take long to upload: no limit on a whole request, only on a body that stops arriving.
  server.requestTimeout = 0;
  abortIdleBodies(server, options.bodyIdleTimeoutMs, logger);
  answerClientErrors(server, logger);

  const url = await listenOn(server, options.addr, options.tls ? 'https' : 'http');

  let shuttingDown: Promise<void> | null = null;
  const shutdown = (deadlineMs: number) => {
    shuttingDown ??= new Promise<void>((resolve) => {
      state.closing = true;
      server.getConnections((_error, count) => {
        if (count > 0) logger.info({ connections: count, deadlineMs }, 'waiting for requests in flight to finish');
      });
      const sweep = setInterval(() => server.closeIdleConnections(), IDLE_SWEEP_MS);
      const deadline = setTimeout(() => {
        server.getConnections((_error, count) => {
          if (count > 0) logger.warn({ connections: count }, 'shutdown deadline reached: closing connections with requests still in flight');
          server.closeAllConnections();
        });
      }, deadlineMs);
      server.close(() => {
        clearInterval(sweep);
        clearTimeout(deadline);
        resolve();
      });
      server.closeIdleConnections();
    });
    return shuttingDown;
  };

  const reloadTls = async (): Promise<boolean> => {
    if (!options.tls || !(server instanceof https.Server)) return false;
    const material = await readTlsFiles(options.tls);
    server.setSecureContext(material);
    describeCertificate(logger, material.cert, 'TLS certificate reloaded');
    return true;
  };

  return { server, address: server.address() as AddressInfo, url, shutdown, reloadTls };
}

/** Reads and checks the pair (the key must match the certificate) before anything uses it. */
async function readTlsFiles(files: TlsFiles): Promise<{ cert: Buffer; key: Buffer }> {
  const [cert, key] = await Promise.all([
    fs.readFile(files.certificate).catch((error: NodeJS.ErrnoException) => {
      throw new Error(`cannot read http.tls.certificate ${files.certificate}: ${error.code ?? error.message}`);
    }),
    fs.readFile(files.key).catch((error: NodeJS.ErrnoException) => {
      throw new Error(`cannot read http.tls.key ${files.key}: ${error.code ?? error.message}`);
    }),
  ]);
  try {
    tls.createSecureContext({ cert, key });
  } catch (error) {
    throw new Error(`http.tls: the certificate and key cannot be used together: ${(error as Error).message}`);
  }
  return { cert, key };
}

function describeCertificate(logger: Logger, pem: Buffer, message: string): void {
  let certificate: X509Certificate;
  try {
    certificate = new X509Certificate(pem);
  } catch {
    logger.info(message);
    return;
  }
  const expires = Date.parse(certificate.validTo);
  const details = {
    subject: certificate.subject.replace(/\n/g, ', '),
    names: certificate.subjectAltName,
    validTo: new Date(expires).toISOString(),
    serial: certificate.serialNumber,
    fingerprint256: certificate.fingerprint256,
  };
  if (expires - Date.now() < EXPIRY_WARNING_MS) logger.warn(details, `${message}; it expires soon or has expired`);
  else logger.info(details, message);
}
