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
  // One wrapper per method, made on first use (every request goes through here) and made
  // again should the store's method be replaced.
  const wrappers = new Map<PropertyKey, { of: unknown; method: unknown }>();
  return new Proxy(store, {
    get(target, property) {
      const value: unknown = Reflect.get(target, property, target);
      if (typeof value !== 'function') return value;
      const known = wrappers.get(property);
      if (known?.of === value) return known.method;
      const method = RECORDING_METHODS.has(property)
        ? async (...args: unknown[]) => {
            try {
              return await (value as (...args: unknown[]) => Promise<unknown>).apply(target, args);
            } finally {
              onChange();
            }
          }
        : (value as (...args: unknown[]) => unknown).bind(target);
      wrappers.set(property, { of: value, method });
      return method;
    },
  });
}
