/**
 * `GET <status.path>?limit=N`: the agent's recent deploys, newest first, for
 * `Authorization: Bearer <status.token>` (compared in constant time). A token of its own, not the
 * webhook secret: a dashboard that reads the view cannot sign deliveries. Off without a token.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { DeployJob } from './state.js';

export interface StatusRequest {
  agent: string;
  token: string | null;
  authorization: string | undefined;
  query: URLSearchParams;
  jobs: DeployJob[];
  now: number;
}

const MAX_LIMIT = 200;
const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());

/** One deploy as the view shows it. */
export function describeJob(job: DeployJob) {
  return {
    eventId: job.eventId,
    target: job.target,
    type: job.event.type,
    repository: job.event.repository,
    tag: job.event.tag,
    digest: job.event.digest,
    reference: job.event.reference,
    status: job.status,
    attempt: job.attempt,
    lastAttempt: job.lastAttempt,
    exitCode: job.exitCode,
    signal: job.signal,
    timedOut: job.timedOut,
    interrupted: job.interrupted,
    durationMs: job.durationMs,
    acceptedAt: iso(job.acceptedAt),
    startedAt: iso(job.startedAt),
    deadline: job.status === 'running' ? iso(job.deadline) : null,
    finishedAt: iso(job.finishedAt),
    nextAttemptAt: job.status === 'queued' ? iso(job.notBefore) : null,
    supersededBy: job.supersededBy,
    processGroup: job.status === 'running' ? (job.process?.pgid ?? null) : null,
    output: job.output,
  };
}

export function statusView(request: StatusRequest): { status: number; body: Record<string, unknown>; headers?: Record<string, string> } {
  if (request.token === null) return { status: 404, body: { error: 'the status view is off: set status.token or status.tokenFile' } };
  if (!bearerMatches(request.authorization, request.token)) {
    return { status: 401, body: { error: 'a bearer token is required' }, headers: { 'WWW-Authenticate': 'Bearer realm="registry-agent"' } };
  }
  const limitText = request.query.get('limit');
  const limit = limitText === null ? 50 : Number(limitText);
  if (!Number.isInteger(limit) || limit < 1 || limit > MAX_LIMIT) return { status: 400, body: { error: `limit must be 1-${MAX_LIMIT}` } };
  const deploys = [...request.jobs].sort((a, b) => b.acceptedAt - a.acceptedAt).slice(0, limit).map(describeJob);
  const counts: Record<string, number> = {};
  for (const job of request.jobs) counts[job.status] = (counts[job.status] ?? 0) + 1;
  return { status: 200, body: { agent: request.agent, time: iso(request.now), counts, deploys } };
}

function bearerMatches(header: string | undefined, token: string): boolean {
  const match = header ? /^Bearer\s+(\S+)\s*$/i.exec(header) : null;
  if (!match) return false;
  // Hashing first makes the comparison constant-time whatever the lengths.
  const digest = (value: string) => createHash('sha256').update(value).digest();
  return timingSafeEqual(digest(match[1]!), digest(token));
}
