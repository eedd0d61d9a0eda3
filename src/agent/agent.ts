/**
 * Assembles the deploy agent: its state on disk, the deployer, the reporter that tells the
 * registry how deploys went, and the HTTP receiver, listening on `listen`. On start it finishes
 * what an earlier process had taken (deploys queued, or running when it crashed). Used by the
 * `registry-agent` entry point and by tests.
 */
import http from 'node:http';
import { pino, type Logger } from 'pino';
import { agentSecret, statusToken, type AgentConfig } from './config.js';
import { Deployer } from './deployer.js';
import { createReceiver } from './receiver.js';
import { eventReport, reportUrl, Reporter } from './reports.js';
import { AgentState, type DeployJob } from './state.js';
import { listenOn } from '../serving.js';

export interface RunningAgent {
  /** Base URL, e.g. http://127.0.0.1:9400 (add `path` for the delivery endpoint). */
  url: string;
  server: http.Server;
  deployer: Deployer;
  state: AgentState;
  /** Settles once the deploys an earlier process left are cleaned up and queued again. */
  recovered: Promise<void>;
  /** Stops taking deliveries, waits for running deploys and (briefly) for reports, closes the state. */
  close(): Promise<void>;
}

export function createAgentLogger(config: AgentConfig): Logger {
  return pino({ level: config.log.level, base: { service: 'registry-agent' } });
}

export async function startAgent(config: AgentConfig, logger: Logger = createAgentLogger(config), env: NodeJS.ProcessEnv = process.env): Promise<RunningAgent> {
  const secret = agentSecret(config);
  const token = statusToken(config);
  const state = AgentState.open(config.stateFile, config.rememberEvents);
  if (state.damagedLines > 0) logger.warn({ stateFile: config.stateFile, lines: state.damagedLines, copy: `${config.stateFile}.damaged` }, 'state file had damaged lines; they were skipped');
  const reporter = new Reporter(secret, config.report, logger);
  const report = (job: DeployJob) => {
    if (!config.report.enabled) return;
    const url = reportUrl(job.callbackUrl, config.report.registryUrl);
    const body = url && eventReport(config.name, state.jobsOf(job.eventId));
    if (url && body) reporter.submit(url, body);
    else if (job.callbackUrl && !url) logger.warn({ event: job.eventId, callback: job.callbackUrl }, 'deploy callback is not a registry deploy-results URL; not reporting');
  };
  const deployer = new Deployer({ state, config, logger, onChange: report, env });
  const server = http.createServer(createReceiver({ config, secret, statusToken: token, state, deployer, logger }));
  server.requestTimeout = 30_000;
  server.headersTimeout = 10_000;
  let url: string;
  try {
    url = await listenOn(server, config.listen, 'http');
  } catch (error) {
    state.close();
    throw error;
  }
  const recovered = deployer.recover().catch((error: unknown) => logger.error({ err: error }, 'recovering earlier deploys failed'));
  let closing: Promise<void> | undefined;
  return {
    url,
    server,
    deployer,
    state,
    recovered,
    close() {
      closing ??= (async () => {
        await new Promise<void>((resolve) => {
          server.close(() => resolve());
          server.closeIdleConnections();
        });
        await recovered;
        await deployer.close();
        await reporter.close();
        state.close();
      })();
      return closing;
    },
  };
}
