/**
 * A decorator around the metadata store that calls back after every operation that can
 * record outbox events, so the dispatcher wakes at once instead of at its next poll. The
 * registry domain receives the decorated store and never knows webhooks exist (the
 * decorator pattern CNCF distribution uses for its notifications).
 */
import type { MetadataStore } from '../registry/ports.js';

/** The MetadataStore methods that may write outbox events. */
const RECORDING_METHODS = new Set<PropertyKey>(['putManifest', 'deleteManifest', 'deleteTag', 'linkBlob']);

export function withChangeNotifications<T extends MetadataStore>(store: T, onChange: () => void): T {
  return new Proxy(store, {
    get(target, property) {
      const value: unknown = Reflect.get(target, property, target);
      if (typeof value !== 'function') return value;
      if (!RECORDING_METHODS.has(property)) return (value as (...args: unknown[]) => unknown).bind(target);
      return async (...args: unknown[]) => {
        try {
          return await (value as (...args: unknown[]) => Promise<unknown>).apply(target, args);
        } finally {
          onChange();
        }
      };
    },
  });
}
