/**
 * `registry-agent`: the reference deploy agent. Listens for signed registry webhooks and runs
 * each matching target's command, one deploy at a time per target.
 *
 *   registry-agent [--config registry-agent.yaml]
 */
import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { startAgent, createAgentLogger } from './agent.js';
import { closeOnSignals } from '../serving.js';
import { AgentConfigError, LEGACY_STATE_FILE, loadAgentConfig } from './config.js';

const USAGE = `usage: registry-agent [--config FILE]

Receives signed webhooks from the registry and runs a deploy command per matching target.
Configuration: FILE, else $DEPLOY_AGENT_CONFIG, else ./registry-agent.yaml; DEPLOY_AGENT_*
variables override single settings (see the README).`;

/** Command-line options, parsed by node:util's parseArgs (strict: unknown options are errors). */
function parseArguments(argv: string[]): { file?: string } {
  let values: { config?: string; help?: boolean };
  try {
    ({ values } = parseArgs({
      args: argv,
      options: { config: { type: 'string', short: 'c' }, help: { type: 'boolean', short: 'h' } },
      strict: true,
      allowPositionals: false,
    }));
  } catch (error) {
    fail(`${(error as Error).message}\n${USAGE}`);
  }
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    process.exit(0);
  }
  return { file: values.config };
}

function fail(message: string): never {
  process.stderr.write(`registry-agent: ${message}\n`);
  process.exit(2);
}

async function main(): Promise<void> {
  const args = parseArguments(process.argv.slice(2));
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
  logger.info(
    { url: `${agent.url}${config.path === '/' ? '' : config.path}`, agent: config.name, targets: config.targets.map((t) => t.name), stateFile: path.resolve(config.stateFile) },
    'agent listening',
  );
  if (fs.existsSync(LEGACY_STATE_FILE) && path.resolve(LEGACY_STATE_FILE) !== path.resolve(config.stateFile)) {
    logger.warn({ found: path.resolve(LEGACY_STATE_FILE), stateFile: path.resolve(config.stateFile) }, 'an earlier default state file is in the current directory; set stateFile to it to keep its memory of events');
  }

  closeOnSignals(logger, () => agent.close(), 'shutting down; waiting for running deploys');
}

main().catch((error: unknown) => {
  process.stderr.write(`registry-agent: failed to start: ${error instanceof Error ? error.stack : String(error)}\n`);
  process.exit(1);
});
