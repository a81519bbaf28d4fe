/**
 * A read-only window on a `Map`: it shows the map's current contents, and has no `set`, `delete` or
 * `clear`, so plain JavaScript cannot change the map behind it (a cast to `Map` does not help).
 */
export class ReadonlyMapView<K, V> implements ReadonlyMap<K, V> {
  readonly #map: ReadonlyMap<K, V>;

  /** @param map the map to show */
  constructor(map: ReadonlyMap<K, V>) {
    this.#map = map;
  }

  /** Number of entries. */
  get size(): number {
    return this.#map.size;
  }

  /** The value under `key`, if any. */
  get(key: K): V | undefined {
    return this.#map.get(key);
  }

  /** Whether `key` is present. */
  has(key: K): boolean {
    return this.#map.has(key);
  }

  /** The keys, in insertion order. */
  keys(): MapIterator<K> {
    return this.#map.keys();
  }

  /** The values, in insertion order. */
  values(): MapIterator<V> {
    return this.#map.values();
  }

  /** The `[key, value]` pairs, in insertion order. */
  entries(): MapIterator<[K, V]> {
    return this.#map.entries();
  }

  /** Calls `callback` for each entry, as `Map#forEach` does (the view as its third argument). */
  forEach(callback: (value: V, key: K, map: ReadonlyMap<K, V>) => void, thisArg?: unknown): void {
    for (const [key, value] of this.#map) callback.call(thisArg, value, key, this);
  }

  /** The `[key, value]` pairs, in insertion order. */
  [Symbol.iterator](): MapIterator<[K, V]> {
    return this.#map.entries();
  }

  /** `[object ReadonlyMap]`. */
  get [Symbol.toStringTag](): string {
    return 'ReadonlyMap';
  }
}
