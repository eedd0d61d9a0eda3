/**
 * `registry config check [--file F] [--print]`: validates a configuration (the file and the
 * REGISTRY_* variables, exactly as the server would read them) without starting anything, and
 * checks that configured TLS files can be read and belong together. Exit 0 when valid, 2 with
 * every problem named otherwise.
 *
 * `registry config schema`: prints the JSON Schema of the configuration file, for editors
 * (e.g. the YAML language server: `# yaml-language-server: $schema=registry.schema.json`).
 */
import fs from 'node:fs/promises';
import tls from 'node:tls';
import type { Command } from 'commander';
import YAML from 'yaml';
import { z } from 'zod';
import { ConfigError, DEFAULT_CONFIG_FILE, loadConfig } from '../config/load.js';
import { hideUrlPassword } from '../config/metadata.js';
import { configSchema, type Config } from '../config/schema.js';

function print(line = ''): void {
  process.stdout.write(`${line}\n`);
}

/** Keys whose values are never printed. */
const SECRET_KEYS = /(password|secret|token$)/i;

export function registerConfigCommands(program: Command): void {
  const config = program.command('config').description('check the configuration, or print its JSON Schema');

  config
    .command('check')
    .description('validate a configuration file and the REGISTRY_* environment without starting the registry')
    .option('-f, --file <file>', 'the file to check (default: --config, $REGISTRY_CONFIG, then config/registry.yaml)')
    .option('--print', 'print the effective configuration (defaults filled in, secrets hidden) as YAML')
    .action(async (options: { file?: string; print?: boolean }) => {
      const file = options.file ?? program.opts<{ config?: string }>().config;
      const loaded = loadConfig({ file });
      const problems = await checkFiles(loaded);
      if (problems.length > 0) throw new ConfigError(`invalid configuration (${describeSource(file)}):\n${problems.map((p) => `  - ${p}`).join('\n')}`);
      if (options.print) process.stdout.write(YAML.stringify(redact(loaded)));
      print(`configuration OK (${describeSource(file)})`);
    });

  config
    .command('schema')
    .description('print the JSON Schema of the configuration file')
    .action(() => {
      print(JSON.stringify(configJsonSchema(), null, 2));
    });
}

/** The JSON Schema of what the file may hold (input form: sizes as text, defaults shown). */
export function configJsonSchema(): Record<string, unknown> {
  const schema = z.toJSONSchema(configSchema, { io: 'input', unrepresentable: 'any' }) as Record<string, unknown>;
  return { ...schema, title: 'harbormaster registry configuration', description: 'config/registry.yaml; every setting can also be given as REGISTRY_<PATH> (e.g. REGISTRY_HTTP_ADDR)' };
}

function describeSource(file: string | undefined): string {
  return file ?? process.env.REGISTRY_CONFIG ?? DEFAULT_CONFIG_FILE;
}

/** What the schema cannot see: files the configuration names. */
async function checkFiles(config: Config): Promise<string[]> {
  const problems: string[] = [];
  const { certificate, key } = config.http.tls;
  if (certificate && key) {
    const read = async (file: string, setting: string) => {
      try {
        return await fs.readFile(file);
      } catch (error) {
        problems.push(`${setting}: cannot read ${file} (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`);
        return null;
      }
    };
    const [cert, keyPem] = await Promise.all([read(certificate, 'http.tls.certificate'), read(key, 'http.tls.key')]);
    if (cert && keyPem) {
      try {
        tls.createSecureContext({ cert, key: keyPem });
      } catch (error) {
        problems.push(`http.tls: the certificate and key cannot be used together (${(error as Error).message})`);
      }
    }
  }
  return problems;
}

function redact(value: unknown, key = ''): unknown {
  if (Array.isArray(value)) return value.map((entry) => redact(entry));
  if (value && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, redact(v, k)]));
  }
  if (typeof value === 'string' && SECRET_KEYS.test(key)) return '[hidden]';
  if (typeof value === 'string' && key === 'url' && /^postgres(ql)?:\/\//.test(value)) return hideUrlPassword(value);
  return value;
}
