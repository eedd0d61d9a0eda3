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
import path from 'node:path';
import YAML from 'yaml';
import { z } from 'zod';
import { listenAddressSchema } from '../config/schema.js';
import { MAX_PATTERN_LENGTH, validatePatterns } from '../webhooks/filters.js';
import { SUBSCRIBABLE_EVENT_TYPES } from '../webhooks/types.js';

export const DEFAULT_AGENT_CONFIG_FILE = 'registry-agent.yaml';

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
    /** The command is killed (its whole process group) after this long. */
    timeoutSeconds: z.number().int().min(1).max(86_400).default(900),
    /** Extra environment for the command. */
    env: z.record(z.string(), z.string()).default({}),
  })
  .strict();

export type TargetConfig = z.infer<typeof targetSchema>;

export const agentConfigSchema = z
  .object({
    /** host:port to listen on. */
    listen: listenAddressSchema('127.0.0.1:9400').default('127.0.0.1:9400'),
    /** URL path deliveries are posted to. */
    path: z.string().regex(/^\/[^\s?#]*$/, 'must be a path starting with /').default('/'),
    /** The subscription's secret (or `secretFile`). */
    secret: z.string().min(16, 'must be at least 16 characters').optional(),
    secretFile: z.string().min(1).optional(),
    /** Deliveries whose signed timestamp is further than this from now are refused. */
    maxSkewSeconds: z.number().int().min(1).max(86_400).default(300),
    /** Where accepted event ids are remembered, to drop duplicate deliveries across restarts. */
    stateFile: z.string().min(1).default('./registry-agent-events.jsonl'),
    /** How many event ids are remembered. */
    rememberEvents: z.number().int().min(100).max(1_000_000).default(10_000),
    /** Largest delivery body accepted, in bytes. */
    maxBodyBytes: z.number().int().min(1_024).max(16 * 1024 * 1024).default(1024 * 1024),
    log: z
      .object({ level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info') })
      .strict()
      .prefault({}),
    targets: z.array(targetSchema).min(1, 'at least one target is needed'),
  })
  .strict()
  .refine((c) => (c.secret === undefined) !== (c.secretFile === undefined), { message: 'give exactly one of secret and secretFile' })
  .refine((c) => new Set(c.targets.map((t) => t.name)).size === c.targets.length, { message: 'target names must be unique' });

export type AgentConfig = z.infer<typeof agentConfigSchema>;

export class AgentConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'AgentConfigError';
  }
}

/** Scalar settings that the environment may override. */
const ENV_SETTINGS: Record<string, string[]> = {
  DEPLOY_AGENT_LISTEN: ['listen'],
  DEPLOY_AGENT_PATH: ['path'],
  DEPLOY_AGENT_SECRET: ['secret'],
  DEPLOY_AGENT_SECRET_FILE: ['secretFile'],
  DEPLOY_AGENT_MAX_SKEW_SECONDS: ['maxSkewSeconds'],
  DEPLOY_AGENT_STATE_FILE: ['stateFile'],
  DEPLOY_AGENT_REMEMBER_EVENTS: ['rememberEvents'],
  DEPLOY_AGENT_MAX_BODY_BYTES: ['maxBodyBytes'],
  DEPLOY_AGENT_LOG_LEVEL: ['log', 'level'],
};

export interface AgentLoadOptions {
  file?: string;
  env?: NodeJS.ProcessEnv;
}

export function loadAgentConfig(options: AgentLoadOptions = {}): AgentConfig {
  const env = options.env ?? process.env;
  const explicit = options.file ?? env.DEPLOY_AGENT_CONFIG;
  const file = explicit ?? DEFAULT_AGENT_CONFIG_FILE;
  const raw = readFile(file, explicit !== undefined);
  for (const [name, keyPath] of Object.entries(ENV_SETTINGS)) {
    const value = env[name];
    if (value === undefined) continue;
    let node = raw;
    for (const key of keyPath.slice(0, -1)) {
      if (typeof node[key] !== 'object' || node[key] === null) node[key] = {};
      node = node[key] as Record<string, unknown>;
    }
    node[keyPath[keyPath.length - 1]!] = /^\d+$/.test(value) && keyPath[0] !== 'secret' ? Number(value) : value;
  }
  if (env.DEPLOY_AGENT_COMMAND) {
    const list = (value: string | undefined) => (value ? value.split(',').map((s) => s.trim()).filter(Boolean) : []);
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
  return validateAgentConfig(raw, file);
}

export function validateAgentConfig(input: unknown, source = 'configuration'): AgentConfig {
  const result = agentConfigSchema.safeParse(input);
  if (result.success) return result.data;
  const lines = result.error.issues.map((issue) => `  - ${issue.path.map(String).join('.') || '(top level)'}: ${issue.message}`);
  throw new AgentConfigError(`invalid agent configuration (${source}):\n${lines.join('\n')}`);
}

/** The secret from the config or its file (trailing newline ignored). */
export function agentSecret(config: AgentConfig): string {
  if (config.secret !== undefined) return config.secret;
  try {
    const secret = fs.readFileSync(config.secretFile!, 'utf8').replace(/\r?\n$/, '');
    if (secret.length < 16) throw new AgentConfigError(`secretFile ${config.secretFile} holds fewer than 16 characters`);
    return secret;
  } catch (error) {
    if (error instanceof AgentConfigError) throw error;
    throw new AgentConfigError(`cannot read secretFile ${config.secretFile}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
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
