/**
 * What an image's manifest and config say, read for people (the web interface's image page):
 * an index's platforms, an image's layers and its config's run settings (entrypoint, env,
 * ports, labels, user, working dir, HEALTHCHECK) and build history. Pure functions over the
 * stored bytes; fields a manifest or config lacks come out as null or empty, never guessed.
 */
import { manifestKind } from './media-types.js';

export interface Platform {
  os: string;
  architecture: string;
  variant?: string;
  osVersion?: string;
}

export interface DescriptorView {
  digest: string;
  mediaType: string | null;
  size: number | null;
  artifactType: string | null;
  annotations: Record<string, string> | null;
}

export interface IndexEntry extends DescriptorView {
  platform: Platform | null;
}

export interface Healthcheck {
  /** As docker stores it: `["CMD-SHELL", "curl -f …"]`, `["CMD", …]` or `["NONE"]`. */
  test: string[];
  /** Durations in seconds (the config stores nanoseconds); null: docker's default. */
  intervalSeconds: number | null;
  timeoutSeconds: number | null;
  startPeriodSeconds: number | null;
  startIntervalSeconds: number | null;
  retries: number | null;
}

export interface HistoryEntry {
  created: string | null;
  createdBy: string | null;
  comment: string | null;
  emptyLayer: boolean;
}

export interface ImageConfigView {
  created: string | null;
  author: string | null;
  platform: Platform | null;
  user: string | null;
  workingDir: string | null;
  entrypoint: string[] | null;
  cmd: string[] | null;
  env: string[];
  exposedPorts: string[];
  volumes: string[];
  labels: Record<string, string>;
  stopSignal: string | null;
  healthcheck: Healthcheck | null;
  history: HistoryEntry[];
}

/** One manifest of a repository as the image page shows it (GET /api/v1/repositories/<name>/_images/<reference>). */
export interface ImageDetails {
  repository: string;
  digest: string;
  mediaType: string;
  kind: 'index' | 'image' | 'artifact';
  artifactType: string | null;
  /** The manifest's own bytes, and what pulling it downloads. */
  size: number;
  totalSize: number;
  tags: string[];
  subject: string | null;
  annotations: Record<string, string> | null;
  /** Index only: its entries with platforms. */
  manifests: IndexEntry[];
  /** Image or artifact: its layers (blobs), compressed sizes. */
  layers: DescriptorView[];
  config: (DescriptorView & { image: ImageConfigView | null }) | null;
  referrers: DescriptorView[];
  /** The manifest as stored. */
  raw: string;
}

/** Media types of image configs (docker's and OCI's); an artifact's config is something else. */
export const IMAGE_CONFIG_TYPES = new Set(['application/vnd.oci.image.config.v1+json', 'application/vnd.docker.container.image.v1+json']);

type Json = Record<string, unknown>;

const isObject = (value: unknown): value is Json => typeof value === 'object' && value !== null && !Array.isArray(value);
const text = (value: unknown): string | null => (typeof value === 'string' ? value : null);
const number = (value: unknown): number | null => (typeof value === 'number' && Number.isFinite(value) ? value : null);
const strings = (value: unknown): string[] | null => (Array.isArray(value) && value.every((entry) => typeof entry === 'string') ? (value as string[]) : null);
const keys = (value: unknown): string[] => (isObject(value) ? Object.keys(value).sort() : []);

function stringMap(value: unknown): Record<string, string> | null {
  if (!isObject(value)) return null;
  const entries = Object.entries(value).filter((entry): entry is [string, string] => typeof entry[1] === 'string');
  return Object.fromEntries(entries);
}

/** Parses JSON bytes into an object, or null when they are not a JSON object. */
export function parseJsonObject(bytes: Uint8Array | string): Json | null {
  try {
    const parsed: unknown = JSON.parse(typeof bytes === 'string' ? bytes : new TextDecoder().decode(bytes));
    return isObject(parsed) ? parsed : null;
  } catch {
    return null;
  }
}

export function descriptorView(value: unknown): DescriptorView | null {
  if (!isObject(value) || typeof value.digest !== 'string') return null;
  return {
    digest: value.digest,
    mediaType: text(value.mediaType),
    size: number(value.size),
    artifactType: text(value.artifactType),
    annotations: stringMap(value.annotations),
  };
}

export function platformOf(value: unknown): Platform | null {
  if (!isObject(value) || typeof value.os !== 'string' || typeof value.architecture !== 'string') return null;
  const platform: Platform = { os: value.os, architecture: value.architecture };
  if (typeof value.variant === 'string' && value.variant !== '') platform.variant = value.variant;
  const osVersion = value['os.version'] ?? value.os_version;
  if (typeof osVersion === 'string' && osVersion !== '') platform.osVersion = osVersion;
  return platform;
}

/** What kind of thing a manifest describes: an index, a runnable image, or another artifact. */
export function contentKind(mediaType: string, manifest: Json | null): 'index' | 'image' | 'artifact' {
  if (manifestKind(mediaType) === 'index') return 'index';
  const configType = isObject(manifest?.config) ? text(manifest.config.mediaType) : null;
  if (typeof manifest?.artifactType === 'string' || (configType !== null && !IMAGE_CONFIG_TYPES.has(configType))) return 'artifact';
  return 'image';
}

/** An index's entries with their platforms (attestation entries carry `unknown/unknown`, kept as declared). */
export function indexEntries(manifest: Json | null): IndexEntry[] {
  if (!Array.isArray(manifest?.manifests)) return [];
  return manifest.manifests.flatMap((entry: unknown) => {
    const descriptor = descriptorView(entry);
    return descriptor ? [{ ...descriptor, platform: platformOf((entry as Json).platform) }] : [];
  });
}

/** The distinct real platforms of an index, in order (no `unknown/unknown` attestation entries). */
export function indexPlatforms(manifest: Json | null): Platform[] {
  const seen = new Map<string, Platform>();
  for (const { platform } of indexEntries(manifest)) {
    if (!platform || platform.os === 'unknown') continue;
    seen.set(`${platform.os}/${platform.architecture}/${platform.variant ?? ''}`, platform);
  }
  return [...seen.values()];
}

export function layersOf(manifest: Json | null): DescriptorView[] {
  return Array.isArray(manifest?.layers) ? manifest.layers.flatMap((layer: unknown) => descriptorView(layer) ?? []) : [];
}

const seconds = (nanoseconds: unknown): number | null => {
  const value = number(nanoseconds);
  return value === null || value === 0 ? null : value / 1e9;
};

function healthcheckOf(value: unknown): Healthcheck | null {
  if (!isObject(value)) return null;
  const test = strings(value.Test);
  if (!test || test.length === 0) return null;
  return {
    test,
    intervalSeconds: seconds(value.Interval),
    timeoutSeconds: seconds(value.Timeout),
    startPeriodSeconds: seconds(value.StartPeriod),
    startIntervalSeconds: seconds(value.StartInterval),
    retries: number(value.Retries) || null,
  };
}

/** The run settings and history of an image config (docker's and OCI's share these field names). */
export function imageConfigView(config: Json): ImageConfigView {
  const run = isObject(config.config) ? config.config : {};
  const history = Array.isArray(config.history) ? config.history.filter(isObject) : [];
  return {
    created: text(config.created),
    author: text(config.author),
    platform: platformOf(config),
    user: text(run.User) || null,
    workingDir: text(run.WorkingDir) || null,
    entrypoint: strings(run.Entrypoint),
    cmd: strings(run.Cmd),
    env: strings(run.Env) ?? [],
    exposedPorts: keys(run.ExposedPorts),
    volumes: keys(run.Volumes),
    labels: stringMap(run.Labels) ?? {},
    stopSignal: text(run.StopSignal) || null,
    healthcheck: healthcheckOf(run.Healthcheck),
    history: history.map((entry) => ({
      created: text(entry.created),
      createdBy: text(entry.created_by),
      comment: text(entry.comment),
      emptyLayer: entry.empty_layer === true,
    })),
  };
}
