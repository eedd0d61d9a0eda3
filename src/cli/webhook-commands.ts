/**
 * `registry webhook …`: the webhook admin API from the command line, on the configured storage
 * root's database (the server need not run; a running one picks changes up on its next poll).
 *
 *   registry webhook add --url https://deploy.example.com/hook --event tag.created --repository 'team/*' --tag semver:stable
 *   registry webhook list | show ID | update ID --paused|--disabled|--active | delete ID | ping ID
 *   registry webhook deliveries ID [--state failed] | delivery ID N | redeliver ID N | redeliver-event ID EVENT | failed
 *   registry webhook redeliver-all [--subscription ID] [--state failed|delivered] [--since ISO] [--until ISO]
 *
 * A subscription's secret is printed once, when it is created (or given with --secret-stdin).
 * Exit status: 0 done, 1 refused (unknown id, conflict, read-only), 2 bad input.
 */
import { InvalidArgumentError, type Command } from 'commander';
import { loadConfig } from '../config/load.js';
import type { PublicSubscription, WebhookService } from '../webhooks/service.js';
import type { Delivery, DeliveryState, DeliveryWithAttempts } from '../webhooks/types.js';

const EXIT_FAILED = 1;
const EXIT_USAGE = 2;

function print(line = ''): void {
  process.stdout.write(`${line}\n`);
}

function collect(value: string, previous: string[] = []): string[] {
  return [...previous, ...value.split(',').map((entry) => entry.trim()).filter(Boolean)];
}

function header(value: string, previous: Record<string, string> = {}): Record<string, string> {
  const colon = value.indexOf(':');
  const equals = value.indexOf('=');
  const split = colon > 0 && (equals < 0 || colon < equals) ? colon : equals;
  if (split <= 0) throw new InvalidArgumentError('expected Name: value or Name=value');
  return { ...previous, [value.slice(0, split).trim()]: value.slice(split + 1).trim() };
}

function positiveInt(value: string): number {
  if (!/^\d{1,15}$/.test(value)) throw new InvalidArgumentError('expected a whole number');
  return Number(value);
}

function deliveryNumber(program: Command, value: string): number {
  if (!/^\d{1,15}$/.test(value)) program.error(`error: delivery must be a number, not ${JSON.stringify(value)}`, { exitCode: EXIT_USAGE });
  return Number(value);
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8').replace(/\r?\n$/, '');
}

interface SubscriptionFlags {
  url?: string;
  secretStdin?: boolean;
  event?: string[];
  repository?: string[];
  tag?: string[];
  header?: Record<string, string>;
  format?: string;
  paused?: boolean;
  active?: boolean;
  disabled?: boolean;
  json?: boolean;
}

/** Renderings of subscriptions and deliveries (from webhooks/cli-support.ts and webhooks/views.ts). */
interface Show {
  subscription(subscription: PublicSubscription): string;
  delivery(delivery: Delivery): string;
  deliveryDetail(delivery: Awaited<ReturnType<WebhookService['getDelivery']>>): string[];
  deliveryJson(delivery: Delivery): Record<string, unknown>;
}

/** Runs one command against the webhook service; refusals become a message and an exit status. */
async function withWebhooks(program: Command, run: (webhooks: WebhookService, show: Show) => Promise<void>): Promise<void> {
  const config = loadConfig({ file: program.opts<{ config?: string }>().config });
  // Loaded on use: the rest of the CLI starts without the webhook modules.
  const { withWebhookService, describeSubscription, describeDelivery, describeDeliveryDetail } = await import('../webhooks/cli-support.js');
  const { WebhookError } = await import('../webhooks/service.js');
  const { deliveryView } = await import('../webhooks/views.js');
  const show: Show = { subscription: describeSubscription, delivery: describeDelivery, deliveryDetail: describeDeliveryDetail, deliveryJson: deliveryView };
  try {
    await withWebhookService(config, (webhooks) => run(webhooks, show));
  } catch (error) {
    if (!(error instanceof WebhookError)) throw error;
    process.stderr.write(`registry: ${error.message}\n`);
    process.exitCode = error.kind === 'invalid' ? EXIT_USAGE : EXIT_FAILED;
  }
}

async function fieldsOf(options: SubscriptionFlags): Promise<Record<string, unknown>> {
  const fields: Record<string, unknown> = {};
  if (options.url !== undefined) fields.url = options.url;
  if (options.secretStdin) fields.secret = await readStdin();
  if (options.event) fields.events = options.event;
  if (options.repository) fields.repositories = options.repository;
  if (options.tag) fields.tags = options.tag;
  if (options.header) fields.headers = options.header;
  if (options.format !== undefined) fields.format = options.format;
  if (options.paused) fields.state = 'paused';
  if (options.active) fields.state = 'active';
  if (options.disabled) fields.state = 'disabled';
  return fields;
}

function subscriptionOptions(command: Command): Command {
  return command
    .option('--event <type>', 'event type (tag.created, tag.updated, tag.deleted, manifest.deleted, repository.created, manifest.pulled); repeatable or comma-separated', collect)
    .option('--repository <pattern>', 'repository pattern (team/*, team/**, /regex/); repeatable', collect)
    .option('--tag <pattern>', 'tag pattern (v1.*, semver, semver:stable, /regex/); repeatable', collect)
    .option('--header <name:value>', 'extra request header; repeatable', header)
    .option('--format <format>', 'native, distribution (registry:2 envelope), cloudevents or dockerhub (Docker Hub webhooks)')
    .option('--secret-stdin', 'read the HMAC secret (at least 16 characters) from standard input')
    .option('--json', 'print JSON');
}

export function registerWebhookCommands(program: Command): void {
  const webhook = program.command('webhook').description('manage webhook subscriptions and their deliveries');

  subscriptionOptions(
    webhook
      .command('add')
      .description('subscribe an endpoint; a generated secret is printed once')
      .requiredOption('--url <url>', 'http(s) endpoint events are POSTed to')
      .option('--id <id>', 'a stable id (lowercase letters, digits, ".", "_", "-"); default: generated')
      .option('--paused', 'create it paused'),
  ).action(async (options: SubscriptionFlags & { id?: string }) => {
    const fields = await fieldsOf(options);
    if (options.id !== undefined) fields.id = options.id;
    await withWebhooks(program, async (webhooks, show) => {
      const created = await webhooks.createSubscription(fields);
      if (options.json) return print(JSON.stringify(created, null, 2));
      print(`created ${show.subscription(created)}`);
      if (!options.secretStdin) print(`secret: ${created.secret}\n(shown only this once)`);
    });
  });

  webhook
    .command('list')
    .description('list subscriptions (never their secrets)')
    .option('--json', 'print JSON')
    .action(async (options: { json?: boolean }) => {
      await withWebhooks(program, async (webhooks, show) => {
        const subscriptions = await webhooks.listSubscriptions();
        if (options.json) return print(JSON.stringify(subscriptions, null, 2));
        for (const subscription of subscriptions) print(show.subscription(subscription));
      });
    });

  webhook
    .command('show <id>')
    .description('show one subscription')
    .action(async (id: string) => {
      await withWebhooks(program, async (webhooks, show) => print(JSON.stringify(await webhooks.getSubscription(id), null, 2)));
    });

  subscriptionOptions(
    webhook
      .command('update <id>')
      .description('change a subscription (only the options given)')
      .option('--url <url>', 'new endpoint')
      .option('--paused', 'pause deliveries: events queue up and go out once active again')
      .option('--disabled', 'disable: events recorded meanwhile are dropped')
      .option('--active', 'resume deliveries'),
  ).action(async (id: string, options: SubscriptionFlags) => {
    if ([options.paused, options.active, options.disabled].filter(Boolean).length > 1) {
      program.error('error: --paused, --disabled and --active contradict each other', { exitCode: EXIT_USAGE });
    }
    const fields = await fieldsOf(options);
    await withWebhooks(program, async (webhooks, show) => {
      const updated = await webhooks.updateSubscription(id, fields);
      print(options.json ? JSON.stringify(updated, null, 2) : `updated ${show.subscription(updated)}`);
    });
  });

  webhook
    .command('delete <id>')
    .description('delete a subscription with its delivery log')
    .action(async (id: string) => {
      await withWebhooks(program, async (webhooks, show) => {
        await webhooks.deleteSubscription(id);
        print(`deleted ${id}`);
      });
    });

  webhook
    .command('ping <id>')
    .description('send a ping event now (one attempt); exit 1 when the endpoint did not answer 2xx')
    .action(async (id: string) => {
      await withWebhooks(program, async (webhooks, show) => {
        const result = await webhooks.ping(id);
        print(show.delivery(result.delivery));
        if (!result.ok) process.exitCode = EXIT_FAILED;
      });
    });

  webhook
    .command('deliveries <id>')
    .description("a subscription's deliveries, newest first")
    .option('--state <state>', 'pending, delivered or failed')
    .option('--limit <n>', 'at most this many (default 50, at most 500)', positiveInt)
    .option('--json', 'print JSON')
    .action(async (id: string, options: { state?: string; limit?: number; json?: boolean }) => {
      if (options.state !== undefined && !['pending', 'delivered', 'failed'].includes(options.state)) {
        program.error('error: --state must be pending, delivered or failed', { exitCode: EXIT_USAGE });
      }
      await withWebhooks(program, async (webhooks, show) => {
        const deliveries = await webhooks.listDeliveries(id, { state: options.state as DeliveryState | undefined, limit: options.limit });
        if (options.json) return print(JSON.stringify(deliveries.map(show.deliveryJson), null, 2));
        for (const delivery of deliveries) print(show.delivery(delivery));
      });
    });

  webhook
    .command('delivery <id> <delivery>')
    .description('one delivery: its state, the deploy outcome each agent reported (deploy: succeeded | failed | running), its attempt log')
    .option('--json', 'print JSON, as the admin API shows it')
    .action(async (id: string, delivery: string, options: { json?: boolean }) => {
      const number = deliveryNumber(program, delivery);
      await withWebhooks(program, async (webhooks, show) => {
        const detail = await webhooks.getDelivery(id, number);
        if (options.json) return print(JSON.stringify(show.deliveryJson(detail), null, 2));
        for (const line of show.deliveryDetail(detail)) print(line);
      });
    });

  webhook
    .command('redeliver <id> <delivery>')
    .description('queue a delivery again, due now')
    .action(async (id: string, delivery: string) => {
      const number = deliveryNumber(program, delivery);
      await withWebhooks(program, async (webhooks, show) => print(`queued ${show.delivery(await webhooks.redeliver(id, number))}`));
    });

  webhook
    .command('redeliver-event <id> <event-id>')
    .description('queue any outbox event for a subscription, by event id')
    .action(async (id: string, eventId: string) => {
      await withWebhooks(program, async (webhooks, show) => print(`queued ${show.delivery(await webhooks.redeliverEvent(id, eventId))}`));
    });

  webhook
    .command('redeliver-all')
    .description('queue again, oldest first, the failed (or delivered) deliveries of one subscription or all, created in a time range')
    .option('--subscription <id>', 'only this subscription')
    .option('--state <state>', 'failed (default) or delivered')
    .option('--since <time>', 'created at or after this ISO 8601 time')
    .option('--until <time>', 'created before this ISO 8601 time')
    .option('--limit <n>', 'at most this many (default 1000, at most 10000)', positiveInt)
    .action(async (options: { subscription?: string; state?: string; since?: string; until?: string; limit?: number }) => {
      await withWebhooks(program, async (webhooks) => {
        const { subscription, ...rest } = options;
        const result = await webhooks.redeliverMatching({ ...rest, ...(subscription !== undefined ? { subscriptionId: subscription } : {}) });
        print(`queued ${result.redelivered} deliveries${result.deliveries.length ? `: #${result.deliveries.join(' #')}` : ''}`);
      });
    });

  webhook
    .command('failed')
    .description('failed deliveries of every subscription, newest first')
    .option('--limit <n>', 'at most this many (default 50, at most 500)', positiveInt)
    .option('--json', 'print JSON')
    .action(async (options: { limit?: number; json?: boolean }) => {
      await withWebhooks(program, async (webhooks, show) => {
        const deliveries = await webhooks.failedDeliveries({ limit: options.limit });
        if (options.json) return print(JSON.stringify(deliveries.map(show.deliveryJson), null, 2));
        for (const delivery of deliveries) print(show.delivery(delivery));
      });
    });
}
