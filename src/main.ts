/**
 * Entry point: load the configuration and serve the registry until told to stop.
 *
 * Signals: SIGTERM or SIGINT shut down gracefully (stop accepting, let requests in flight
 * finish within http.shutdownTimeoutSeconds, stop the webhook dispatcher and the collection
 * schedule after their current work, close the database, exit 0); a second one exits at once
 * (status 1). SIGHUP re-reads the TLS certificate and key without dropping connections.
 */
import { ConfigError, loadConfig } from './config/load.js';
import { createLogger, startRegistry } from './server.js';
import { closeOnSignals } from './serving.js';
import { VERSION } from './version.js';

async function main(): Promise<void> {
  let config;
  try {
    config = loadConfig();
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`registry: ${error.message}\n`);
      process.exit(2);
    }
    throw error;
  }
  const logger = createLogger(config);
  let running;
  try {
    running = await startRegistry(config, logger);
  } catch (error) {
    // Storage that cannot be used (a missing bucket, refused credentials) is a setting to fix.
    if (error instanceof ConfigError) {
      process.stderr.write(`registry: ${error.message}\n`);
      process.exit(2);
    }
    throw error;
  }
  logger.info({ url: running.url, storage: config.storage.root, version: VERSION }, 'registry listening');

  closeOnSignals(logger, () => running.close(), 'shutting down', { deadlineSeconds: config.http.shutdownTimeoutSeconds });
  process.on('SIGHUP', () => {
    running.reloadTls().then(
      (reloaded) => {
        if (!reloaded) logger.info('SIGHUP: no TLS certificate to reload');
      },
      (error: unknown) => logger.error({ err: error }, 'TLS reload failed; keeping the previous certificate'),
    );
  });
}

main().catch((error: unknown) => {
  process.stderr.write(`registry: failed to start: ${error instanceof Error ? error.stack : String(error)}\n`);
  process.exit(1);
});
