/**
 * Loads the configuration: the YAML file (default `config/registry.yaml`), then `REGISTRY_*`
 * environment overrides named after the key path as CNCF distribution names them
 * (`http.addr` → `REGISTRY_HTTP_ADDR`, `storage.deleteEnabled` → `REGISTRY_STORAGE_DELETE_ENABLED`).
 * Anything unknown or malformed fails with a message naming the setting.
 */
import fs from 'node:fs';
import path from 'node:path';
import { closest, distance } from 'fastest-levenshtein';
import YAML from 'yaml';
import { z } from 'zod';
import { configSchema, type Config } from './schema.js';

export const DEFAULT_CONFIG_FILE = 'config/registry.yaml';
const ENV_PREFIX = 'REGISTRY_';
/** Variables with the prefix that are not settings. */
const NON_SETTING_VARIABLES = new Set(['REGISTRY_CONFIG']);
/** Short names for settings set often enough to deserve one: env name → key path. Consulted before the generic names. */
const ENV_ALIASES: Record<string, string[]> = {
  REGISTRY_AUTH: ['auth', 'mode'],
  REGISTRY_ADMIN_PASSWORD: ['auth', 'adminPassword'],
};

export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

export interface LoadOptions {
  /** Config file; defaults to $REGISTRY_CONFIG, then config/registry.yaml if present. */
  file?: string;
  env?: NodeJS.ProcessEnv;
}

export function loadConfig(options: LoadOptions = {}): Config {
  const env = options.env ?? process.env;
  const explicitFile = options.file ?? env.REGISTRY_CONFIG;
  const file = explicitFile ?? DEFAULT_CONFIG_FILE;
  const fromFile = readConfigFile(file, explicitFile !== undefined);
  const { config, setBy } = applyEnvironment(fromFile, env);
  return validateConfig(config, file, setBy);
}

/**
 * Validates a configuration. `setBy` maps the key paths (dot-joined) that came from the
 * environment to the variable that set them, so an error names what the user actually typed.
 */
export function validateConfig(input: unknown, source = 'configuration', setBy: ReadonlyMap<string, string> = new Map()): Config {
  const result = configSchema.safeParse(input);
  if (result.success) return result.data;
  throw new ConfigError(`invalid configuration (${source}):\n${describeIssues(result.error, setBy)}`);
}

function readConfigFile(file: string, required: boolean): Record<string, unknown> {
  let text: string;
  try {
    text = fs.readFileSync(path.resolve(file), 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT' && !required) return {};
    throw new ConfigError(`cannot read config file ${file}: ${(error as Error).message}`);
  }
  let parsed: unknown;
  try {
    parsed = YAML.parse(text);
  } catch (error) {
    throw new ConfigError(`config file ${file} is not valid YAML: ${(error as Error).message}`);
  }
  if (parsed === null || parsed === undefined) return {};
  if (typeof parsed !== 'object' || Array.isArray(parsed)) throw new ConfigError(`config file ${file} must hold a mapping of settings`);
  return parsed as Record<string, unknown>;
}

/** Environment variable name for a key path: ['storage', 'deleteEnabled'] → REGISTRY_STORAGE_DELETE_ENABLED. */
export function envName(keyPath: string[]): string {
  return ENV_PREFIX + keyPath.map((key) => key.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toUpperCase()).join('_');
}

function applyEnvironment(config: Record<string, unknown>, env: NodeJS.ProcessEnv): { config: Record<string, unknown>; setBy: Map<string, string> } {
  const leaves = settingLeaves(configSchema);
  const aliases = Object.entries(ENV_ALIASES).flatMap(([name, keyPath]) => {
    const leaf = leaves.find((candidate) => candidate.keyPath.join('.') === keyPath.join('.'));
    return leaf ? [[name, leaf] as const] : [];
  });
  const settings = new Map([...aliases, ...leaves.map((leaf) => [envName(leaf.keyPath), leaf] as const)]);
  const result = structuredClone(config);
  const setBy = new Map<string, string>();
  for (const [name, raw] of Object.entries(env)) {
    if (!name.startsWith(ENV_PREFIX) || NON_SETTING_VARIABLES.has(name) || raw === undefined) continue;
    const setting = settings.get(name);
    if (!setting) throw unknownVariable(name, [...settings.keys(), ...NON_SETTING_VARIABLES]);
    setPath(result, setting.keyPath, envValue(raw, setting.schema));
    setBy.set(setting.keyPath.join('.'), name);
  }
  return { config: result, setBy };
}

/** A misspelt variable gets the closest known name; one that resembles none gets the list. */
function unknownVariable(name: string, known: string[]): ConfigError {
  const suggestion = closest(name, known);
  // A few edits, relative to the length: REGISTRY_HTTP_ADR → REGISTRY_HTTP_ADDR, not REGISTRY_X → REGISTRY_AUTH.
  const near = distance(name, suggestion) <= Math.max(2, Math.floor((name.length - ENV_PREFIX.length) / 3));
  if (near) return new ConfigError(`unknown setting in environment: ${name}; did you mean ${suggestion}?`);
  return new ConfigError(`unknown setting in environment: ${name} (known: ${[...known].sort().join(', ')})`);
}

/**
 * A setting that takes text gets the variable's text unchanged (a root named `2024` or
 * holding ` #`); others read it as a YAML scalar, so `true` and `5000` get their types.
 * A value fitting neither stays text, so the error quotes what was given.
 */
function envValue(raw: string, schema: z.ZodType): unknown {
  if (schema.safeParse(raw).success) return raw;
  const typed = parseScalar(raw);
  return schema.safeParse(typed).success ? typed : raw;
}

function parseScalar(raw: string): unknown {
  try {
    const value: unknown = YAML.parse(raw);
    return value === null || typeof value === 'object' ? raw : value;
  } catch {
    return raw;
  }
}

function setPath(target: Record<string, unknown>, keyPath: string[], value: unknown): void {
  let node = target;
  for (const key of keyPath.slice(0, -1)) {
    const next = node[key];
    if (typeof next !== 'object' || next === null || Array.isArray(next)) node[key] = {};
    node = node[key] as Record<string, unknown>;
  }
  node[keyPath[keyPath.length - 1]!] = value;
}

/** Every leaf setting of the schema: its key path and its own schema. */
function settingLeaves(schema: z.ZodType, prefix: string[] = []): Array<{ keyPath: string[]; schema: z.ZodType }> {
  const inner = unwrap(schema);
  if (inner instanceof z.ZodObject) {
    return Object.entries(inner.shape as Record<string, z.ZodType>).flatMap(([key, child]) => settingLeaves(child, [...prefix, key]));
  }
  return [{ keyPath: prefix, schema }];
}

function unwrap(schema: z.ZodType): z.ZodType {
  let current = schema;
  while (current instanceof z.ZodDefault || current instanceof z.ZodOptional || current instanceof z.ZodPrefault) {
    current = current.unwrap() as z.ZodType;
  }
  return current;
}

function describeIssues(error: z.ZodError, setBy: ReadonlyMap<string, string>): string {
  return error.issues
    .map((issue) => {
      const keyPath = issue.path.map(String);
      if (issue.code === 'unrecognized_keys') {
        return issue.keys.map((key) => `  - ${[...keyPath, key].join('.')}: unknown setting`).join('\n');
      }
      const where = keyPath.length ? `${keyPath.join('.')} (${variableOf(keyPath, setBy)})` : '(top level)';
      return `  - ${where}: ${issue.message}`;
    })
    .join('\n');
}

/** The variable that set a key path (or the setting holding it), else the one that would. */
function variableOf(keyPath: string[], setBy: ReadonlyMap<string, string>): string {
  for (let length = keyPath.length; length > 0; length--) {
    const name = setBy.get(keyPath.slice(0, length).join('.'));
    if (name) return name;
  }
  return envName(keyPath);
}
