/**
 * The admin command line: `registry serve`, and user, robot, grant and tag management working
 * directly on the storage root's database (configured exactly like the server: the YAML file
 * and REGISTRY_* variables).
 *
 *   registry user add alice --grant 'team/*:pull,push' [--admin] [--password-stdin]
 *   registry robot add ci --grant 'ci/**:pull,push' --expires 90d
 *   registry grant add robot+ci 'tools/*' pull
 */
import path from 'node:path';
import { Command, CommanderError, InvalidArgumentError } from 'commander';
import { AccountError, AccountManager, parseExpiry, type GrantInput, type GrantView } from '../auth/management.js';
import { generatePassword } from '../auth/secrets.js';
import { ConfigError, loadConfig } from '../config/load.js';
import type { Config } from '../config/schema.js';
import { openMetadataBackend } from '../metadata/backend.js';
import { VERSION } from '../version.js';
import { registerConfigCommands } from './config-commands.js';
import { registerLifecycleCommands } from './lifecycle-commands.js';
import { registerMetadataCommands } from './metadata-commands.js';
import { registerMigrateCommands } from './migrate-commands.js';
import { registerTagCommands } from './tag-commands.js';
import { registerTransferCommands } from './transfer-commands.js';
import { registerWebhookCommands } from './webhook-commands.js';

/** Exit codes: 1 for a refused operation (not found, conflict), 2 for bad input or configuration. */
const EXIT_FAILED = 1;
const EXIT_USAGE = 2;

interface GlobalOptions {
  config?: string;
}

/** `pattern:actions`, e.g. `team/*:pull,push` (the pattern holds no `:`). */
function grantSpec(value: string, previous: GrantInput[] = []): GrantInput[] {
  const colon = value.lastIndexOf(':');
  if (colon <= 0 || colon === value.length - 1) throw new InvalidArgumentError('expected pattern:actions, e.g. team/*:pull,push');
  return [...previous, { pattern: value.slice(0, colon), actions: value.slice(colon + 1) }];
}

function print(line = ''): void {
  process.stdout.write(`${line}\n`);
}

function formatGrants(grants: GrantView[]): string {
  return grants.length === 0 ? '-' : grants.map((grant) => `${grant.pattern}:${grant.actions.join(',')}`).join(' ');
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8').replace(/\r?\n$/, '');
}

/** The password from stdin, or a generated one the caller prints once. */
async function passwordFrom(options: { passwordStdin?: boolean }): Promise<{ password: string; generated: boolean }> {
  if (options.passwordStdin) return { password: await readStdin(), generated: false };
  return { password: generatePassword(), generated: true };
}

/** Opens the accounts of the configured storage root for one command, and closes them after. */
async function withAccounts<T>(program: Command, run: (accounts: AccountManager, config: Config) => Promise<T>): Promise<T> {
  const options = program.opts<GlobalOptions>();
  const config = loadConfig({ file: options.config });
  if (config.auth.mode === 'none') process.stderr.write('registry: note: auth.mode is none; accounts take effect once token auth is on\n');
  const backend = await openMetadataBackend(config);
  try {
    return await run(new AccountManager(backend.accounts), config);
  } finally {
    await backend.close();
  }
}

export function buildProgram(): Command {
  const program = new Command('registry')
    .description('Harbormaster registry: serve it, check its configuration, manage users, robots, grants, tags and webhooks, collect garbage, import and export images, move to PostgreSQL and S3')
    .version(VERSION, '-v, --version', 'print the version')
    .option('-c, --config <file>', 'configuration file (default: $REGISTRY_CONFIG, then config/registry.yaml)')
    .showHelpAfterError('(run with --help for usage)')
    // Before any subcommand is added, so that they all inherit it.
    .exitOverride();

  program
    .command('serve')
    .description('start the registry (same as npm start)')
    .action(async () => {
      const { config } = program.opts<GlobalOptions>();
      if (config) process.env.REGISTRY_CONFIG = config;
      await import('../main.js');
    });

  const user = program.command('user').description('manage users (people, with passwords)');
  user
    .command('add <name>')
    .description('create a user; without --password-stdin a password is generated and printed once')
    .option('--admin', 'give the admin role (everything, plus account management)')
    .option('--grant <pattern:actions>', 'grant actions (pull, push, delete) on a repository pattern; repeatable', grantSpec, [])
    .option('--password-stdin', 'read the password from standard input')
    .action(async (name: string, options: { admin?: boolean; grant: GrantInput[]; passwordStdin?: boolean }) => {
      const { password, generated } = await passwordFrom(options);
      await withAccounts(program, async (accounts) => {
        const created = await accounts.createUser({ name, password, role: options.admin ? 'admin' : 'user', grants: options.grant });
        print(`created user ${created.name} (${created.role}) grants: ${formatGrants(created.grants)}`);
        if (generated) print(`password: ${password}\n(shown only this once)`);
      });
    });
  user
    .command('list')
    .description('list users with their roles and grants')
    .option('--json', 'print JSON')
    .action(async (options: { json?: boolean }) => {
      await withAccounts(program, async (accounts) => {
        const users = await accounts.listUsers();
        if (options.json) return print(JSON.stringify(users, null, 2));
        for (const entry of users) print(`${entry.name}\t${entry.role}\t${formatGrants(entry.grants)}`);
      });
    });
  user
    .command('delete <name>')
    .description('delete a user with its grants and refresh tokens (never the last admin)')
    .action(async (name: string) => {
      await withAccounts(program, async (accounts) => {
        await accounts.deleteUser(name);
        print(`deleted user ${name}`);
      });
    });
  user
    .command('passwd <name>')
    .description("set a user's password (ends its refresh tokens); without --password-stdin one is generated and printed once")
    .option('--password-stdin', 'read the password from standard input')
    .action(async (name: string, options: { passwordStdin?: boolean }) => {
      const { password, generated } = await passwordFrom(options);
      await withAccounts(program, async (accounts) => {
        await accounts.setPassword(name, password);
        print(`password of ${name} changed`);
        if (generated) print(`password: ${password}\n(shown only this once)`);
      });
    });

  const robot = program.command('robot').description('manage robot accounts (CI: a generated secret, limited grants)');
  robot
    .command('add <name>')
    .description('create a robot; its secret is printed once (log in as robot+<name>)')
    .requiredOption('--grant <pattern:actions>', 'grant actions on a repository pattern; repeatable', grantSpec)
    .option('--expires <when>', 'expiry: a duration (30d, 12h, 90m) or an ISO date')
    .option('--description <text>', 'what the robot is for')
    .option('--json', 'print JSON (with the secret)')
    .action(async (name: string, options: { grant: GrantInput[]; expires?: string; description?: string; json?: boolean }) => {
      await withAccounts(program, async (accounts) => {
        const expiresAt = options.expires === undefined ? null : parseExpiry(options.expires);
        const { robot: created, secret } = await accounts.createRobot({
          name,
          description: options.description,
          expiresAt,
          grants: options.grant,
          createdBy: 'cli',
        });
        if (options.json) return print(JSON.stringify({ ...created, secret }, null, 2));
        print(`created robot ${created.name} grants: ${formatGrants(created.grants)} expires: ${created.expiresAt ?? 'never'}`);
        print(`username: ${created.login}`);
        print(`secret: ${secret}\n(shown only this once)`);
      });
    });
  robot
    .command('list')
    .description('list robots with their status and grants')
    .option('--json', 'print JSON')
    .action(async (options: { json?: boolean }) => {
      await withAccounts(program, async (accounts) => {
        const robots = await accounts.listRobots();
        if (options.json) return print(JSON.stringify(robots, null, 2));
        for (const entry of robots) print(`${entry.name}\t${entry.status}\texpires ${entry.expiresAt ?? 'never'}\t${formatGrants(entry.grants)}`);
      });
    });
  robot
    .command('revoke <name>')
    .description('revoke a robot: its secret and refresh tokens stop working at once')
    .action(async (name: string) => {
      await withAccounts(program, async (accounts) => {
        await accounts.revokeRobot(name);
        print(`revoked robot ${name}`);
      });
    });

  const grant = program.command('grant').description('manage grants: repository patterns × actions, of a user or robot+<name>');
  grant
    .command('add <account> <pattern> <actions>')
    .description('grant actions (comma list of pull, push, delete) on a pattern (team/app, team/*, team/**)')
    .action(async (account: string, pattern: string, actions: string) => {
      await withAccounts(program, async (accounts) => {
        const added = await accounts.addGrant(account, { pattern, actions });
        print(`${account}: ${added.pattern}:${added.actions.join(',')}`);
      });
    });
  grant
    .command('remove <account> <pattern>')
    .description('remove the grant on a pattern')
    .action(async (account: string, pattern: string) => {
      await withAccounts(program, async (accounts) => {
        await accounts.removeGrant(account, pattern);
        print(`${account}: removed ${pattern}`);
      });
    });
  grant
    .command('list <account>')
    .description('list the grants of a user or robot+<name>')
    .option('--json', 'print JSON')
    .action(async (account: string, options: { json?: boolean }) => {
      await withAccounts(program, async (accounts) => {
        const grants = await accounts.listGrants(account);
        if (options.json) return print(JSON.stringify(grants, null, 2));
        for (const entry of grants) print(`${entry.pattern}\t${entry.actions.join(',')}`);
      });
    });

  registerTagCommands(program);
  registerLifecycleCommands(program);
  registerMetadataCommands(program);
  registerMigrateCommands(program);
  registerConfigCommands(program);
  registerWebhookCommands(program);
  registerTransferCommands(program);
  return program;
}

export async function runCli(argv: string[]): Promise<void> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv);
  } catch (error) {
    if (error instanceof CommanderError) {
      // Help and version exit 0; usage errors were already explained by commander.
      process.exitCode = error.exitCode === 0 ? 0 : EXIT_USAGE;
      return;
    }
    if (error instanceof AccountError) {
      process.stderr.write(`registry: ${error.message}\n`);
      process.exitCode = error.kind === 'invalid' ? EXIT_USAGE : EXIT_FAILED;
      return;
    }
    if (error instanceof ConfigError) {
      process.stderr.write(`registry: ${error.message}\n`);
      process.exitCode = EXIT_USAGE;
      return;
    }
    throw error;
  }
}

await runCli(process.argv);
