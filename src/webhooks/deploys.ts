/**
 * Deploy results reported back by the receivers of deliveries (the deploy agent, or anything
 * speaking the same contract): every delivery names a callback URL in X-Registry-Deploy-Callback;
 * the receiver POSTs JSON there, signed like a delivery (X-Registry-Signature-256 over the raw
 * body with the subscription's secret) and carrying `sentAt`. The registry keeps the latest
 * report per (delivery, agent) and how many arrived, and sums them up per delivery.
 */
import { z } from 'zod';
import type { DeployReport, DeployStatus } from './types.js';
import { DEPLOY_STATUSES } from './types.js';

/** Where the admin API lives; the deploy callback is under it. */
export const WEBHOOKS_API_PATH = '/api/v1/webhooks';

/** Reports older than this, or further ahead than {@link MAX_REPORT_FUTURE_MS}, are refused (replays, skewed clocks). */
export const MAX_REPORT_AGE_MS = 5 * 60_000;
export const MAX_REPORT_FUTURE_MS = 60_000;

/** `<scheme>://<host the event names>/api/v1/webhooks/<id>/deliveries/<n>/deploys`. */
export function deployCallbackUrl(scheme: 'http' | 'https', host: string, subscriptionId: string, deliveryId: number): string {
  return `${scheme}://${host}${WEBHOOKS_API_PATH}/${encodeURIComponent(subscriptionId)}/deliveries/${deliveryId}/deploys`;
}

const isoTime = z.iso.datetime({ offset: true });

/** The body a receiver posts. */
export const deployReportSchema = z.object({
  agent: z.string().regex(/^[A-Za-z0-9._-]{1,128}$/, 'must be 1-128 letters, digits, ".", "_" or "-"'),
  eventId: z.string().min(1).max(128),
  status: z.enum(DEPLOY_STATUSES),
  attempt: z.number().int().min(1).max(1_000_000),
  exitCode: z.number().int().min(-2_147_483_648).max(2_147_483_647).nullable().default(null),
  durationMs: z.number().int().min(0).max(365 * 86_400_000).nullable().default(null),
  output: z.string().max(4096).nullable().default(null),
  startedAt: isoTime,
  finishedAt: isoTime.nullable().default(null),
  sentAt: isoTime,
});

export type DeployReportInput = z.infer<typeof deployReportSchema>;

/** A report as the store records it (times in ms since the epoch). */
export type NewDeployReport = Omit<DeployReport, 'reports'>;

export function toNewReport(input: DeployReportInput, reportedAt: number): NewDeployReport {
  return {
    agent: input.agent,
    status: input.status,
    attempt: input.attempt,
    exitCode: input.exitCode,
    durationMs: input.durationMs,
    output: input.output,
    startedAt: Date.parse(input.startedAt),
    finishedAt: input.finishedAt === null ? null : Date.parse(input.finishedAt),
    sentAt: Date.parse(input.sentAt),
    reportedAt,
  };
}

/** One word for a delivery's deploys: failed if any agent's latest failed, else running if any runs, else succeeded; null: none reported. */
export function deployStatusOf(reports: readonly DeployReport[]): DeployStatus | null {
  if (reports.length === 0) return null;
  if (reports.some((r) => r.status === 'failed')) return 'failed';
  if (reports.some((r) => r.status === 'running')) return 'running';
  return 'succeeded';
}
