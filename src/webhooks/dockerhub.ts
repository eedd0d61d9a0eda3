/**
 * Docker Hub's webhook format (docs.docker.com/docker-hub/repos/manage/webhooks), as Keel's
 * `/v1/webhooks/dockerhub`, Jenkins and many CI triggers read it: `push_data{pushed_at, pusher,
 * tag, images}`, `repository{repo_name, name, namespace, …}`, `callback_url`. Docker Hub only
 * reports pushes, so only tag.created and tag.updated are sent in it. For a private registry the
 * image name must carry its host (that is how deployments name it), so `repo_name` is
 * `<host>/<repository>`, split as Docker Hub splits it into `namespace`/`name`; `images` holds
 * the pushed digest. Nothing else is added: the attempt time is in X-Registry-Signature-Timestamp.
 */
import type { EventPayload } from './types.js';

export interface DockerHubOptions {
  scheme: 'http' | 'https';
  /** The deploy callback (X-Registry-Deploy-Callback), Docker Hub's `callback_url`. */
  callbackUrl: string;
}

export function dockerHubBody(payload: EventPayload, options: DockerHubOptions): Record<string, unknown> {
  const pushedAt = Math.floor(Date.parse(payload.timestamp) / 1000);
  // A ping names no repository: receivers that need one (Keel) answer it with 400, and deploy nothing.
  const repoName = payload.repository === null ? null : `${payload.registry}/${payload.repository}`;
  const slash = repoName === null ? -1 : repoName.lastIndexOf('/');
  const namespace = repoName === null ? null : repoName.slice(0, slash);
  return {
    callback_url: options.callbackUrl,
    push_data: {
      pushed_at: pushedAt,
      pusher: payload.actor.name,
      tag: payload.tag,
      images: payload.digest ? [payload.digest] : [],
    },
    repository: {
      repo_name: repoName,
      name: repoName === null ? null : repoName.slice(slash + 1),
      namespace,
      owner: namespace,
      repo_url: payload.repository === null ? null : `${options.scheme}://${payload.registry}/v2/${payload.repository}/tags/list`,
      status: 'Active',
      is_private: true,
      is_official: false,
      is_trusted: false,
      description: '',
      full_description: '',
      dockerfile: '',
      star_count: 0,
      comment_count: 0,
    },
  };
}

export interface DockerHubRead {
  registry: string | null;
  repository: string | null;
  tag: string | null;
  digest: string | null;
  pushedAt: Date | null;
}

/** Reads a Docker Hub body back; null when the JSON is not one. */
export function readDockerHub(json: Record<string, unknown>): DockerHubRead | null {
  const pushData = json.push_data;
  const repository = json.repository;
  if (!isObject(pushData) || !isObject(repository)) return null;
  const repoName = typeof repository.repo_name === 'string' && repository.repo_name !== '' ? repository.repo_name : null;
  const slash = repoName?.indexOf('/') ?? -1;
  const images = Array.isArray(pushData.images) ? pushData.images : [];
  const digest = images.find((image): image is string => typeof image === 'string' && image.includes(':')) ?? null;
  return {
    registry: repoName !== null && slash > 0 ? repoName.slice(0, slash) : null,
    repository: repoName !== null && slash > 0 ? repoName.slice(slash + 1) : repoName,
    tag: typeof pushData.tag === 'string' && pushData.tag !== '' ? pushData.tag : null,
    digest,
    pushedAt: typeof pushData.pushed_at === 'number' ? new Date(pushData.pushed_at * 1000) : null,
  };
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
