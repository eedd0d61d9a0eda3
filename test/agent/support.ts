/**
 * Test support for the deploy agent: events and signed deliveries in every format and both
 * authentication schemes of shared contract 2, the agent in-process or as a real `registry-agent`
 * process, and a report receiver: a real loopback HTTP listener that checks each deploy report
 * against shared contract 1 (signature, freshness, fields) and records it.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { createHmac, randomUUID } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import YAML from 'yaml';
import { startAgent, type RunningAgent } from '../../src/agent/agent.js';
import { validateAgentConfig } from '../../src/agent/config.js';
import { dockerHubBody as registryDockerHubBody } from '../../src/webhooks/dockerhub.js';
import { formatBody, imageReference } from '../../src/webhooks/formats.js';
import { sign, verifySignature } from '../../src/webhooks/signing.js';
import type { EventPayload, WebhookFormat } from '../../src/webhooks/types.js';
import { startListener, waitFor, type Listener } from '../webhooks/support.js';

export { waitFor };
export const SECRET = 'agent-shared-secret-0123';
export const DIGEST = `sha256:${'c'.repeat(64)}`;
export const PROJECT_ROOT = path.resolve(import.meta.dirname, '..', '..');

/** Cleanups run after each test, newest first (register with `cleanups.push`). */
export const cleanups: Array<() => Promise<void> | void> = [];
export async function runCleanups(): Promise<void> {
  while (cleanups.length) await cleanups.pop()!();
}

export async function tempDir(): Promise<string> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'registry-agent-'));
  cleanups.push(() => fs.rm(dir, { recursive: true, force: true }));
  return dir;
}

export async function lines(file: string): Promise<string[]> {
  try {
    return (await fs.readFile(file, 'utf8')).split('\n').filter(Boolean);
  } catch {
    return [];
  }
}

/** A target as a config file would give it (defaults filled in by the schema). */
export interface TargetInput {
  name: string;
  command: string;
  repositories?: string[];
  tags?: string[];
  events?: string[];
  timeoutSeconds?: number;
  env?: Record<string, string>;
  passEnvironment?: string[];
  retry?: { attempts?: number; delaySeconds?: number; maxDelaySeconds?: number };
  cwd?: string;
}

export type TestAgent = RunningAgent & { endpoint: string };

/** The agent in this process, on a random loopback port, its state under `dir/state`. */
export async function startInProcess(dir: string, targets: TargetInput[], overrides: Record<string, unknown> = {}, env?: NodeJS.ProcessEnv): Promise<TestAgent> {
  const config = validateAgentConfig({
    listen: '127.0.0.1:0',
    path: '/hooks/registry',
    secret: SECRET,
    stateFile: path.join(dir, 'state', 'events.jsonl'),
    log: { level: 'silent' },
    targets,
    ...overrides,
  });
  const agent = await startAgent(config, pino({ level: 'silent' }), env);
  cleanups.push(() => agent.close());
  return { ...agent, endpoint: `${agent.url}/hooks/registry` };
}

export function event(overrides: Partial<EventPayload> = {}): EventPayload {
  const repository = overrides.repository === undefined ? 'app' : overrides.repository;
  const tag = overrides.tag === undefined ? '1.4.2' : overrides.tag;
  return {
    id: randomUUID(),
    type: 'tag.created',
    timestamp: new Date().toISOString(),
    registry: 'registry.example.com:5000',
    repository,
    tag,
    digest: DIGEST,
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    size: 100,
    platforms: null,
    reference: imageReference('registry.example.com:5000', repository, tag, DIGEST),
    actor: { name: 'ci', kind: 'robot' },
    previousDigest: null,
    ...overrides,
  };
}

/** `t=<unix seconds>,sha256=<HMAC(secret, "<t>.<body>")>`, as contract 2 defines it. */
export function timestampSignature(secret: string, body: string, seconds = Math.floor(Date.now() / 1000)): string {
  return `t=${seconds},sha256=${createHmac('sha256', secret).update(`${seconds}.${body}`).digest('hex')}`;
}

/** A CNCF distribution envelope as distribution writes it: nothing outside its schema (no sentAt). */
export function distributionBody(payload: EventPayload): string {
  return JSON.stringify({
    events: [
      {
        id: payload.id,
        timestamp: payload.timestamp,
        action: 'push',
        target: { mediaType: payload.mediaType, digest: payload.digest, size: payload.size, length: payload.size, repository: payload.repository, tag: payload.tag },
        request: { id: randomUUID(), addr: '127.0.0.1:40000', host: payload.registry, method: 'PUT', useragent: 'skopeo/1.13' },
        actor: {},
        source: { addr: '127.0.0.1:5000', instanceID: randomUUID() },
      },
    ],
  });
}

/** Docker Hub's push webhook body, as the registry writes it (the registry's host is in `payload.registry`). */
export function dockerHubBody(payload: EventPayload, callbackUrl: string): string {
  return JSON.stringify(registryDockerHubBody(payload, { scheme: 'https', callbackUrl }));
}

export interface DeliverOptions {
  secret?: string;
  sentAt?: Date;
  format?: WebhookFormat;
  /** The body as sent, replacing the format's. */
  body?: string;
  tamper?: (body: string) => string;
  /** Body signature header; null: none. */
  signatureHeader?: string | null;
  /** Adds X-Registry-Signature-Timestamp for this time (seconds), or for now with `true`. */
  timestamp?: number | true;
  callback?: string;
  headers?: Record<string, string>;
}

/** Posts a signed delivery; answers status and JSON body. */
export async function deliver(endpoint: string, payload: EventPayload, options: DeliverOptions = {}): Promise<{ status: number; body: any }> {
  const formatted = formatBody(options.format ?? 'native', payload, options.sentAt ?? new Date(), {
    scheme: 'https',
    cloudEventsTypePrefix: 'dev.harbormaster.container',
  });
  const body = options.body ?? formatted.body;
  const secret = options.secret ?? SECRET;
  const headers: Record<string, string> = {
    'Content-Type': formatted.contentType,
    'X-Registry-Event-Id': payload.id,
    'X-Registry-Event': payload.type,
    ...options.headers,
  };
  const signatureHeader = options.signatureHeader === undefined ? 'X-Registry-Signature-256' : options.signatureHeader;
  if (signatureHeader) headers[signatureHeader] = sign(secret, body);
  if (options.timestamp !== undefined) headers['X-Registry-Signature-Timestamp'] = timestampSignature(secret, body, options.timestamp === true ? undefined : options.timestamp);
  if (options.callback) headers['X-Registry-Deploy-Callback'] = options.callback;
  const response = await fetch(endpoint, { method: 'POST', headers, body: options.tamper ? options.tamper(body) : body, signal: AbortSignal.timeout(10_000) });
  return { status: response.status, body: await response.json() };
}

/** The command test targets run: appends one line of its environment to a file. */
export function recorder(file: string, extra = ''): string {
  return `${extra}printf '%s|%s|%s|%s|%s|%s\\n' "$IMAGE_REF" "$IMAGE_REPOSITORY" "$IMAGE_TAG" "$IMAGE_DIGEST" "$REGISTRY_EVENT_TYPE" "$(printf %s "$REGISTRY_EVENT" | head -c 20)" >> '${file}'`;
}

export interface Report {
  path: string;
  body: Record<string, any>;
  at: number;
}

export interface ReportReceiver {
  listener: Listener;
  /** The callback URL of delivery `n` of subscription `sub`. */
  callback(sub?: string, delivery?: number): string;
  /** Reports that passed the contract's checks, in arrival order. */
  reports: Report[];
  /** Requests refused by the receiver's checks, with why. */
  refused: string[];
}

const REPORT_KEYS = ['agent', 'attempt', 'durationMs', 'eventId', 'exitCode', 'finishedAt', 'output', 'sentAt', 'startedAt', 'status'];
const ISO = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/;

/**
 * A deploy-results endpoint as contract 1 specifies it: POST, JSON, X-Registry-Signature-256 over
 * the raw body with `secret`, `sentAt` within 5 min in the past / 1 min in the future, the body's
 * fields and types; 204 when it records, 400/401 like the registry otherwise. `answer` may
 * override the status of a well-formed report (to make the agent retry).
 */
export async function startReportReceiver(secret = SECRET, answer?: (report: Report, index: number) => number | { status: number; delayMs: number }): Promise<ReportReceiver> {
  const listener = await startListener();
  cleanups.push(() => listener.close());
  const receiver: ReportReceiver = {
    listener,
    callback: (sub = 'agent', delivery = 1) => `${listener.url}/api/v1/webhooks/${sub}/deliveries/${delivery}/deploys`,
    reports: [],
    refused: [],
  };
  let index = 0;
  listener.respond = (req) => {
    const refuse = (status: number, why: string) => {
      receiver.refused.push(why);
      return { status, body: JSON.stringify({ errors: [{ code: 'DEPLOY_REPORT_INVALID', message: why }] }) };
    };
    if (req.method !== 'POST' || !/^\/api\/v1\/webhooks\/[^/]+\/deliveries\/\d+\/deploys$/.test(req.url)) return refuse(404, `${req.method} ${req.url}`);
    if (!verifySignature(secret, req.body, req.headers['x-registry-signature-256'] as string | undefined)) return refuse(401, 'bad signature');
    if (req.headers.authorization) return refuse(400, 'a bearer token was sent');
    const body = req.json as Record<string, any> | null;
    if (!body || typeof body !== 'object') return refuse(400, 'not JSON');
    const age = Date.now() - Date.parse(body.sentAt);
    if (!(age <= 5 * 60_000 && age >= -60_000)) return refuse(401, `stale sentAt ${body.sentAt}`);
    try {
      assert.deepEqual(Object.keys(body).sort(), REPORT_KEYS);
      assert.match(body.agent, /^[A-Za-z0-9._-]{1,128}$/);
      assert.equal(typeof body.eventId, 'string');
      assert.ok(['running', 'succeeded', 'failed'].includes(body.status));
      assert.ok(Number.isInteger(body.attempt) && body.attempt >= 1);
      assert.ok(body.exitCode === null || Number.isInteger(body.exitCode));
      assert.ok(body.durationMs === null || (Number.isInteger(body.durationMs) && body.durationMs >= 0));
      assert.ok(body.output === null || (typeof body.output === 'string' && body.output.length <= 4096));
      assert.match(body.startedAt, ISO);
      assert.ok(body.finishedAt === null || ISO.test(body.finishedAt));
      assert.match(body.sentAt, ISO);
      if (body.status === 'running') assert.equal(body.finishedAt, null);
      else assert.notEqual(body.finishedAt, null);
    } catch (error) {
      return refuse(400, `invalid report ${req.body}: ${(error as Error).message}`);
    }
    const report = { path: req.url, body, at: Date.now() };
    const override = answer?.(report, index++);
    const status = typeof override === 'number' ? override : (override?.status ?? 204);
    if (status === 204) receiver.reports.push(report);
    return { status, delayMs: typeof override === 'object' ? override.delayMs : undefined };
  };
  return receiver;
}

/** `[status, attempt]` of each recorded report of an event. */
export function statuses(receiver: ReportReceiver, eventId: string): Array<[string, number]> {
  return receiver.reports.filter((r) => r.body.eventId === eventId).map((r) => [r.body.status, r.body.attempt]);
}

export interface AgentProcess {
  child: ChildProcess;
  /** The delivery endpoint. */
  endpoint: string;
  /** Base URL. */
  url: string;
  output(): string;
  /** The JSON log lines so far. */
  logs(): Array<Record<string, any>>;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  stop(signal?: NodeJS.Signals): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/**
 * A real `registry-agent` process (bin/registry-agent.js) with `config` written to a YAML file
 * and exactly `env` as its environment (plus PATH); stopped after the test.
 */
export async function spawnAgent(dir: string, config: Record<string, unknown> | null, env: Record<string, string> = {}, cwd = dir): Promise<AgentProcess> {
  const args = [path.join(PROJECT_ROOT, 'bin', 'registry-agent.js')];
  if (config) {
    const file = path.join(dir, `agent-${randomUUID().slice(0, 8)}.yaml`);
    await fs.writeFile(file, YAML.stringify(config));
    args.push('--config', file);
  }
  const child = spawn(process.execPath, args, { cwd, env: { PATH: process.env.PATH!, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  let output = '';
  child.stdout!.setEncoding('utf8').on('data', (text: string) => (output += text));
  child.stderr!.setEncoding('utf8').on('data', (text: string) => (output += text));
  const stop = async (signal: NodeJS.Signals = 'SIGTERM') => {
    if (child.exitCode === null && child.signalCode === null) child.kill(signal);
    const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
    const result = await exited;
    clearTimeout(timer);
    return result;
  };
  cleanups.push(async () => {
    await stop('SIGKILL');
  });
  const logs = () =>
    output
      .split('\n')
      .filter((line) => line.startsWith('{'))
      .map((line) => {
        try {
          return JSON.parse(line) as Record<string, any>;
        } catch {
          return {};
        }
      });
  const url = await waitFor(
    () => {
      if (child.exitCode !== null) throw new Error(`the agent exited: ${output}`);
      return logs().find((line) => line.msg === 'agent listening')?.url as string | undefined;
    },
    'the agent to listen',
    20_000,
  );
  const base = new URL(url).origin;
  return { child, endpoint: url, url: base, output: () => output, logs, exited, stop };
}
