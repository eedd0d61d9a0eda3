/**
 * Assembles the deploy agent: the event log on disk, the deployer, and the HTTP receiver,
 * listening on `listen`. Used by the `registry-agent` entry point and by tests.
 */
import http from 'node:http';
import { pino, type Logger } from 'pino';
import { agentSecret, type AgentConfig } from './config.js';
import { Deployer } from './deployer.js';
import { EventLog } from './event-log.js';
import { createReceiver } from './receiver.js';
import { listenOn } from '../serving.js';

export interface RunningAgent {
  /** Base URL, e.g. http://127.0.0.1:9400 (add `path` for the delivery endpoint). */
  url: string;
  server: http.Server;
  deployer: Deployer;
  events: EventLog;
  /** Stops taking deliveries, waits for running deploys, closes the event log. */
  close(): Promise<void>;
}

export function createAgentLogger(config: AgentConfig): Logger {
  return pino({ level: config.log.level, base: { service: 'registry-agent' } });
}

export async function startAgent(config: AgentConfig, logger: Logger = createAgentLogger(config)): Promise<RunningAgent> {
  const secret = agentSecret(config);
  const events = EventLog.open(config.stateFile, config.rememberEvents);
  const deployer = new Deployer(logger, (eventId, result) => events.record(eventId, result));
  const server = http.createServer(createReceiver({ config, secret, events, deployer, logger }));
  server.requestTimeout = 30_000;
  server.headersTimeout = 10_000;
  const url = await listenOn(server, config.listen, 'http');
  let closing: Promise<void> | undefined;
  return {
    url,
    server,
    deployer,
    events,
    close() {
      closing ??= (async () => {
        await new Promise<void>((resolve) => {
          server.close(() => resolve());
          server.closeIdleConnections();
        });
        await deployer.idle();
        events.close();
      })();
      return closing;
    },
  };
}
