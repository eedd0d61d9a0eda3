/**
 * The environment a deploy command runs with. It starts clean: the agent's own environment holds
 * its secret (DEPLOY_AGENT_SECRET) and whatever else its supervisor set, none of which a command
 * (or a log of its `env`) should see. A command gets PATH and HOME, the variables the operator
 * names in `passEnvironment`, its target's `env`, and the event.
 */
import os from 'node:os';
import type { TargetConfig } from './config.js';
import type { DeployEvent } from './state.js';

/** PATH when the agent itself runs without one. */
const DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

/** The event's variables: IMAGE_* and REGISTRY_EVENT*. */
export function deployEnvironment(event: DeployEvent): Record<string, string> {
  const reference =
    event.reference ??
    (event.registry && event.repository
      ? `${event.registry}/${event.repository}${event.tag ? `:${event.tag}` : ''}${event.digest ? `@${event.digest}` : ''}`
      : '');
  return {
    IMAGE_REF: reference,
    IMAGE_REGISTRY: event.registry ?? '',
    IMAGE_REPOSITORY: event.repository ?? '',
    IMAGE_TAG: event.tag ?? '',
    IMAGE_DIGEST: event.digest ?? '',
    IMAGE_PREVIOUS_DIGEST: event.previousDigest ?? '',
    REGISTRY_EVENT: JSON.stringify(event.raw),
    REGISTRY_EVENT_ID: event.id,
    REGISTRY_EVENT_TYPE: event.type,
  };
}

/** Everything a target's command sees; `agentEnv` is the agent's own environment. */
export function commandEnvironment(
  event: DeployEvent,
  target: TargetConfig,
  passEnvironment: readonly string[],
  agentEnv: NodeJS.ProcessEnv = process.env,
): Record<string, string> {
  const env: Record<string, string> = { PATH: agentEnv.PATH || DEFAULT_PATH, HOME: agentEnv.HOME || os.homedir() };
  for (const name of [...passEnvironment, ...target.passEnvironment]) {
    const value = agentEnv[name];
    if (value !== undefined) env[name] = value;
  }
  return { ...env, ...target.env, ...deployEnvironment(event) };
}
