import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { BoundedMap } from '../../src/runtime/bounded-map.js';

describe('BoundedMap', () => {
  it('holds at most its capacity, forgetting the oldest addition first', () => {
    const map = new BoundedMap<string, number>(3);
    for (const [i, key] of ['a', 'b', 'c', 'd', 'e'].entries()) map.set(key, i);
    assert.equal(map.size, 3);
    assert.deepEqual([...map.keys()], ['c', 'd', 'e']);
  });

  it('counts a key set again as the newest, without growing', () => {
    const map = new BoundedMap<string, number>(2);
    map.set('a', 1).set('b', 2).set('a', 3);
    assert.equal(map.size, 2);
    map.set('c', 4);
    assert.deepEqual([...map.entries()], [
      ['a', 3],
      ['c', 4],
    ]);
  });
});
