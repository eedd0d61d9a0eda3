/**
 * A Map that holds at most `capacity` entries: adding one more forgets the oldest addition.
 * For the small caches on request paths (verified tokens, compiled patterns, recent blob
 * checks), where a forgotten entry only costs recomputing it.
 */
export class BoundedMap<K, V> extends Map<K, V> {
  constructor(readonly capacity: number) {
    super();
  }

  override set(key: K, value: V): this {
    // Re-adding moves a key to the newest end, so what is forgotten is what was added longest ago.
    if (this.has(key)) this.delete(key);
    else if (this.size >= this.capacity) this.delete(this.keys().next().value!);
    return super.set(key, value);
  }
}
