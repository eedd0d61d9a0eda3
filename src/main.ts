/** Entry point: load the configuration and serve the registry until told to stop. */
import { ConfigError, loadConfig } from './config/load.js';
import { createLogger, startRegistry } from './server.js';

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
  const running = await startRegistry(config, logger);
  logger.info({ url: running.url, storage: config.storage.root }, 'registry listening');

  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) process.exit(1);
    stopping = true;
    logger.info({ signal }, 'shutting down');
    running.close().then(
      () => process.exit(0),
      (error: unknown) => {
        logger.error({ err: error }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

main().catch((error: unknown) => {
  process.stderr.write(`registry: failed to start: ${error instanceof Error ? error.stack : String(error)}\n`);
  process.exit(1);
});
