/**
 * `registry-agent`: the reference deploy agent. Listens for signed registry webhooks and runs
 * each matching target's command, one deploy at a time per target.
 *
 *   registry-agent [--config registry-agent.yaml]
 */
import { startAgent, createAgentLogger } from './agent.js';
import { AgentConfigError, loadAgentConfig } from './config.js';

const USAGE = `usage: registry-agent [--config FILE]

Receives signed webhooks from the registry and runs a deploy command per matching target.
Configuration: FILE, else $DEPLOY_AGENT_CONFIG, else ./registry-agent.yaml; DEPLOY_AGENT_*
variables override single settings (see the README).`;

function parseArgs(argv: string[]): { file?: string } {
  const args: { file?: string } = {};
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--help' || arg === '-h') {
      process.stdout.write(`${USAGE}\n`);
      process.exit(0);
    } else if (arg === '--config' || arg === '-c') {
      const file = argv[++i];
      if (!file) fail('--config needs a file');
      args.file = file;
    } else if (arg.startsWith('--config=')) {
      args.file = arg.slice('--config='.length);
    } else {
      fail(`unknown argument ${arg}\n${USAGE}`);
    }
  }
  return args;
}

function fail(message: string): never {
  process.stderr.write(`registry-agent: ${message}\n`);
  process.exit(2);
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  let config;
  try {
    config = loadAgentConfig({ file: args.file });
  } catch (error) {
    if (error instanceof AgentConfigError) fail(error.message);
    throw error;
  }
  const logger = createAgentLogger(config);
  let agent;
  try {
    agent = await startAgent(config, logger);
  } catch (error) {
    if (error instanceof AgentConfigError) fail(error.message);
    throw error;
  }
  logger.info({ url: `${agent.url}${config.path === '/' ? '' : config.path}`, targets: config.targets.map((t) => t.name) }, 'agent listening');

  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) process.exit(1);
    stopping = true;
    logger.info({ signal }, 'shutting down; waiting for running deploys');
    agent.close().then(
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
  process.stderr.write(`registry-agent: failed to start: ${error instanceof Error ? error.stack : String(error)}\n`);
  process.exit(1);
});
