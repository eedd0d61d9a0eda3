/**
 * The deploy agent's configuration: a YAML file (`--config`, else $DEPLOY_AGENT_CONFIG, else
 * `registry-agent.yaml` when present) with `DEPLOY_AGENT_*` environment overrides for the
 * scalar settings. The prefix is not `REGISTRY_`: the registry refuses unknown `REGISTRY_*`
 * variables, and both may run from one shell.
 *
 * A single target can also come from the environment alone (DEPLOY_AGENT_COMMAND,
 * DEPLOY_AGENT_REPOSITORIES, DEPLOY_AGENT_TAGS, DEPLOY_AGENT_CWD), for a one-line setup.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import YAML from 'yaml';
import { z } from 'zod';
import { listenAddressSchema } from '../config/schema.js';
import { MAX_PATTERN_LENGTH, validatePatterns } from '../webhooks/filters.js';
import { SUBSCRIBABLE_EVENT_TYPES } from '../webhooks/types.js';

export const DEFAULT_AGENT_CONFIG_FILE = 'registry-agent.yaml';
/** The state file's name inside the agent's data directory. */
export const STATE_FILE_NAME = 'events.jsonl';
/** Where agents before 0.2 kept their state by default: the current directory. */
export const LEGACY_STATE_FILE = 'registry-agent-events.jsonl';
/** Answers 200 to anyone: for liveness and readiness probes. */
export const HEALTH_PATH = '/healthz';

const patterns = z
  .array(z.string().min(1).max(MAX_PATTERN_LENGTH))
  .default([])
  .superRefine((list, ctx) => {
    try {
      validatePatterns(list);
    } catch (error) {
      ctx.addIssue({ code: 'custom', message: (error as Error).message });
    }
  });

/** Names of the agent's own environment that a deploy command may be given (never the agent's settings). */
const passEnvironment = z
  .array(
    z
      .string()
      .regex(/^[A-Za-z_][A-Za-z0-9_]{0,127}$/, 'must be an environment variable name')
      .refine((name) => !name.toUpperCase().startsWith('DEPLOY_AGENT_'), 'DEPLOY_AGENT_* settings (the secret among them) never reach a command'),
  )
  .default([]);

const retryFields = {
  /** How many times a deploy runs at most (1: no retry). */
  attempts: z.number().int().min(1).max(100),
  /** Wait before the first retry; doubles after each failed attempt. */
  delaySeconds: z.number().min(0).max(86_400),
  /** The longest wait between attempts. */
  maxDelaySeconds: z.number().min(0).max(86_400),
};
const retrySchema = z.object(retryFields).strict();
export type RetrySettings = z.infer<typeof retrySchema>;
const DEFAULT_RETRY: RetrySettings = { attempts: 3, delaySeconds: 30, maxDelaySeconds: 600 };

export const targetSchema = z
  .object({
    /** Names the target in logs; deploys of one target never overlap. */
    name: z.string().regex(/^[A-Za-z0-9._-]{1,64}$/, 'must be 1-64 letters, digits, ".", "_" or "-"'),
    /** Repository patterns (glob, /regex/, as for subscriptions); empty: any. */
    repositories: patterns,
    /** Tag patterns (glob, /regex/, semver, semver:stable); empty: any tag. */
    tags: patterns,
    /** Event types that trigger the command. */
    events: z.array(z.enum(SUBSCRIBABLE_EVENT_TYPES)).min(1).default(['tag.created', 'tag.updated']),
    /** Shell command (run with `sh -c`); the event is in its environment, never spliced into the text. */
    command: z.string().min(1),
    /** Working directory of the command. */
    cwd: z.string().min(1).optional(),
    /** Each attempt is killed (its whole process group) after this long, agent restarts included. */
    timeoutSeconds: z.number().int().min(1).max(86_400).default(900),
    /** Extra environment for the command (values given here). */
    env: z.record(z.string(), z.string()).default({}),
    /** Variables of the agent's environment this target's command also gets. */
    passEnvironment,
    /** Overrides the agent-wide `retry` for this target. */
    retry: z.object(retryFields).partial().strict().optional(),
  })
  .strict();

export type TargetConfig = z.infer<typeof targetSchema>;

export const agentConfigSchema = z
  .object({
    /** The agent's name in deploy reports (1-128 letters, digits, ".", "_", "-"); default: the host name. */
    name: z.string().regex(/^[A-Za-z0-9._-]{1,128}$/, 'must be 1-128 letters, digits, ".", "_" or "-"').optional(),
    /** host:port to listen on. */
    listen: listenAddressSchema('127.0.0.1:9400').default('127.0.0.1:9400'),
    /** URL path deliveries are posted to. */
    path: z.string().regex(/^\/[^\s?#]*$/, 'must be a path starting with /').default('/'),
    /** The subscription's secret (or `secretFile`). */
    secret: z.string().min(16, 'must be at least 16 characters').optional(),
    secretFile: z.string().min(1).optional(),
    /** Deliveries whose signed timestamp is further than this from now are refused. */
    maxSkewSeconds: z.number().int().min(1).max(86_400).default(300),
    /** The agent's durable state (event ids, deploys); default: in its data directory, see defaultStateFile. */
    stateFile: z.string().min(1).optional(),
    /** How many event ids are remembered. */
    rememberEvents: z.number().int().min(100).max(1_000_000).default(10_000),
    /** Largest delivery body accepted, in bytes. */
    maxBodyBytes: z.number().int().min(1_024).max(16 * 1024 * 1024).default(1024 * 1024),
    /** Variables of the agent's environment every command gets, besides PATH and HOME. */
    passEnvironment,
    /** Retries of a failed deploy, with exponential backoff. */
    retry: retrySchema.partial().prefault({}).transform((r) => ({ ...DEFAULT_RETRY, ...r })),
    /** Deploy results posted back to the registry (the delivery's X-Registry-Deploy-Callback). */
    report: z
      .object({
        enabled: z.boolean().default(true),
        /** Replaces the callback's scheme, host and port: how this agent reaches the registry. */
        registryUrl: z.url({ protocol: /^https?$/, error: 'must be an http(s) URL' }).optional(),
        /** Tries per report (a newer report of the same event replaces a pending one). */
        attempts: z.number().int().min(1).max(20).default(5),
        /** Wait before the first repeat; doubles after each. */
        delaySeconds: z.number().min(0).max(600).default(2),
        timeoutSeconds: z.number().min(1).max(300).default(10),
      })
      .strict()
      .prefault({}),
    /** GET view of recent deploys, for a bearer token (off without one). */
    status: z
      .object({
        path: z.string().regex(/^\/[^\s?#]*$/, 'must be a path starting with /').default('/status'),
        token: z.string().min(16, 'must be at least 16 characters').optional(),
        tokenFile: z.string().min(1).optional(),
      })
      .strict()
      .prefault({})
      .refine((s) => s.token === undefined || s.tokenFile === undefined, { message: 'give at most one of token and tokenFile' }),
    log: z
      .object({ level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info') })
      .strict()
      .prefault({}),
    targets: z.array(targetSchema).min(1, 'at least one target is needed'),
  })
  .strict()
  .refine((c) => (c.secret === undefined) !== (c.secretFile === undefined), { message: 'give exactly one of secret and secretFile' })
  .refine((c) => new Set(c.targets.map((t) => t.name)).size === c.targets.length, { message: 'target names must be unique' })
  .refine((c) => c.status.path !== c.path && c.status.path !== HEALTH_PATH && c.path !== HEALTH_PATH, {
    message: `path, status.path and ${HEALTH_PATH} must differ`,
  });

type ParsedConfig = z.infer<typeof agentConfigSchema>;
export type AgentConfig = Omit<ParsedConfig, 'name' | 'stateFile'> & { name: string; stateFile: string };

export class AgentConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'AgentConfigError';
  }
}

/** Scalar settings that the environment may override, with the type each is read as. */
type EnvType = 'string' | 'number' | 'boolean' | 'list';
const ENV_SETTINGS: Record<string, { key: string[]; type: EnvType }> = {
  DEPLOY_AGENT_NAME: { key: ['name'], type: 'string' },
  DEPLOY_AGENT_LISTEN: { key: ['listen'], type: 'string' },
  DEPLOY_AGENT_PATH: { key: ['path'], type: 'string' },
  DEPLOY_AGENT_SECRET: { key: ['secret'], type: 'string' },
  DEPLOY_AGENT_SECRET_FILE: { key: ['secretFile'], type: 'string' },
  DEPLOY_AGENT_MAX_SKEW_SECONDS: { key: ['maxSkewSeconds'], type: 'number' },
  DEPLOY_AGENT_STATE_FILE: { key: ['stateFile'], type: 'string' },
  DEPLOY_AGENT_REMEMBER_EVENTS: { key: ['rememberEvents'], type: 'number' },
  DEPLOY_AGENT_MAX_BODY_BYTES: { key: ['maxBodyBytes'], type: 'number' },
  DEPLOY_AGENT_PASS_ENVIRONMENT: { key: ['passEnvironment'], type: 'list' },
  DEPLOY_AGENT_RETRY_ATTEMPTS: { key: ['retry', 'attempts'], type: 'number' },
  DEPLOY_AGENT_RETRY_DELAY_SECONDS: { key: ['retry', 'delaySeconds'], type: 'number' },
  DEPLOY_AGENT_RETRY_MAX_DELAY_SECONDS: { key: ['retry', 'maxDelaySeconds'], type: 'number' },
  DEPLOY_AGENT_REPORT_ENABLED: { key: ['report', 'enabled'], type: 'boolean' },
  DEPLOY_AGENT_REPORT_REGISTRY_URL: { key: ['report', 'registryUrl'], type: 'string' },
  DEPLOY_AGENT_STATUS_TOKEN: { key: ['status', 'token'], type: 'string' },
  DEPLOY_AGENT_STATUS_TOKEN_FILE: { key: ['status', 'tokenFile'], type: 'string' },
  DEPLOY_AGENT_LOG_LEVEL: { key: ['log', 'level'], type: 'string' },
};

export interface AgentLoadOptions {
  file?: string;
  env?: NodeJS.ProcessEnv;
}

const list = (value: string | undefined) => (value ? value.split(',').map((s) => s.trim()).filter(Boolean) : []);

/** A variable's text as its setting's type; a value that does not fit stays text, for the schema to refuse by name. */
function envValue(value: string, type: EnvType): unknown {
  if (type === 'list') return list(value);
  if (type === 'number' && /^\d+(\.\d+)?$/.test(value)) return Number(value);
  if (type === 'boolean' && /^(true|false|1|0)$/.test(value)) return value === 'true' || value === '1';
  return value;
}

export function loadAgentConfig(options: AgentLoadOptions = {}): AgentConfig {
  const env = options.env ?? process.env;
  const explicit = options.file ?? env.DEPLOY_AGENT_CONFIG;
  const file = explicit ?? DEFAULT_AGENT_CONFIG_FILE;
  const raw = readFile(file, explicit !== undefined);
  for (const [name, { key, type }] of Object.entries(ENV_SETTINGS)) {
    const value = env[name];
    if (value === undefined) continue;
    let node = raw;
    for (const part of key.slice(0, -1)) {
      if (typeof node[part] !== 'object' || node[part] === null) node[part] = {};
      node = node[part] as Record<string, unknown>;
    }
    node[key[key.length - 1]!] = envValue(value, type);
  }
  if (env.DEPLOY_AGENT_COMMAND) {
    const targets = Array.isArray(raw.targets) ? raw.targets : [];
    raw.targets = [
      ...targets,
      {
        name: 'env',
        command: env.DEPLOY_AGENT_COMMAND,
        repositories: list(env.DEPLOY_AGENT_REPOSITORIES),
        tags: list(env.DEPLOY_AGENT_TAGS),
        ...(env.DEPLOY_AGENT_CWD ? { cwd: env.DEPLOY_AGENT_CWD } : {}),
      },
    ];
  }
  return validateAgentConfig(raw, file, env);
}

/** Validates settings; the defaults that depend on the machine (name, state file) come from `env`. */
export function validateAgentConfig(input: unknown, source = 'configuration', env: NodeJS.ProcessEnv = process.env): AgentConfig {
  const result = agentConfigSchema.safeParse(input);
  if (!result.success) {
    const lines = result.error.issues.map((issue) => `  - ${issue.path.map(String).join('.') || '(top level)'}: ${issue.message}`);
    throw new AgentConfigError(`invalid agent configuration (${source}):\n${lines.join('\n')}`);
  }
  return { ...result.data, name: result.data.name ?? defaultAgentName(), stateFile: result.data.stateFile ?? defaultStateFile(env) };
}

/**
 * The agent's data directory: systemd's $STATE_DIRECTORY (StateDirectory=), else
 * $XDG_STATE_HOME/registry-agent, else ~/.local/state/registry-agent (the XDG default).
 * The container image sets STATE_DIRECTORY=/var/lib/registry-agent.
 */
export function defaultStateFile(env: NodeJS.ProcessEnv): string {
  const systemd = env.STATE_DIRECTORY?.split(':')[0];
  if (systemd) return path.join(systemd, STATE_FILE_NAME);
  const xdg = env.XDG_STATE_HOME;
  // The XDG spec ignores relative values.
  if (xdg && path.isAbsolute(xdg)) return path.join(xdg, 'registry-agent', STATE_FILE_NAME);
  return path.join(env.HOME || os.homedir(), '.local', 'state', 'registry-agent', STATE_FILE_NAME);
}

/** The host name, as a report's agent name allows it. */
export function defaultAgentName(): string {
  const name = os.hostname().replace(/[^A-Za-z0-9._-]/g, '-').slice(0, 128);
  return name === '' ? 'registry-agent' : name;
}

/** A target's retry settings: its own over the agent's. */
export function retryOf(config: AgentConfig, target: TargetConfig): RetrySettings {
  return { ...config.retry, ...target.retry };
}

/** The secret from the config or its file (trailing newline ignored). */
export function agentSecret(config: AgentConfig): string {
  return config.secret ?? readSecretFile(config.secretFile!, 'secretFile');
}

/** The status view's bearer token; null when the view is off. */
export function statusToken(config: AgentConfig): string | null {
  if (config.status.token !== undefined) return config.status.token;
  return config.status.tokenFile === undefined ? null : readSecretFile(config.status.tokenFile, 'status.tokenFile');
}

function readSecretFile(file: string, setting: string): string {
  try {
    const secret = fs.readFileSync(file, 'utf8').replace(/\r?\n$/, '');
    if (secret.length < 16) throw new AgentConfigError(`${setting} ${file} holds fewer than 16 characters`);
    return secret;
  } catch (error) {
    if (error instanceof AgentConfigError) throw error;
    throw new AgentConfigError(`cannot read ${setting} ${file}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
  }
}

function readFile(file: string, required: boolean): Record<string, unknown> {
  let text: string;
  try {
    text = fs.readFileSync(path.resolve(file), 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT' && !required) return {};
    throw new AgentConfigError(`cannot read config file ${file}: ${(error as Error).message}`);
  }
  let parsed: unknown;
  try {
    parsed = YAML.parse(text);
  } catch (error) {
    throw new AgentConfigError(`config file ${file} is not valid YAML: ${(error as Error).message}`);
  }
  if (parsed === null || parsed === undefined) return {};
  if (typeof parsed !== 'object' || Array.isArray(parsed)) throw new AgentConfigError(`config file ${file} must hold a mapping of settings`);
  return parsed as Record<string, unknown>;
}
