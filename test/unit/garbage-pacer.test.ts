import assert from 'node:assert/strict';
import v8 from 'node:v8';
import { describe, it } from 'node:test';
import { startGarbagePacer } from '../../src/runtime/garbage-pacer.js';

const MiB = 1024 * 1024;

/** A pacer over a fake external-memory reading; `collect` frees what `live` says survives. */
function fakePacer(allowanceMiB: number) {
  let external = 10 * MiB;
  let live = 10 * MiB;
  const pacer = startGarbagePacer({
    allowanceBytes: allowanceMiB * MiB,
    checkIntervalMs: 3_600_000, // checks are driven by the test
    externalBytes: () => external,
    collect: () => (external = live),
  })!;
  return {
    pacer,
    allocate: (mib: number) => (external += mib * MiB),
    setLive: (mib: number) => (live = mib * MiB),
    external: () => external / MiB,
  };
}

describe('garbage pacer', () => {
  it('collects once external memory has grown by the allowance, and not before', () => {
    const memory = fakePacer(4);
    try {
      memory.allocate(3);
      assert.equal(memory.pacer.check(), false);
      memory.allocate(1);
      assert.equal(memory.pacer.check(), true);
      assert.equal(memory.external(), 10, 'the dead chunks were freed');
      assert.equal(memory.pacer.collections, 1);
    } finally {
      memory.pacer.stop();
    }
  });

  it('measures growth from what survived the last collection, so live data never causes a collection storm', () => {
    const memory = fakePacer(4);
    try {
      memory.setLive(30); // e.g. a cache grew meanwhile
      memory.allocate(20);
      assert.equal(memory.pacer.check(), true);
      assert.equal(memory.external(), 30);
      assert.equal(memory.pacer.check(), false, 'live bytes alone are not garbage');
      memory.allocate(3);
      assert.equal(memory.pacer.check(), false);
      memory.allocate(1);
      assert.equal(memory.pacer.check(), true);
    } finally {
      memory.pacer.stop();
    }
  });

  it('follows collections V8 ran on its own', () => {
    let external = 50 * MiB;
    let collections = 0;
    const pacer = startGarbagePacer({
      allowanceBytes: 4 * MiB,
      checkIntervalMs: 3_600_000,
      externalBytes: () => external,
      collect: () => collections++,
    })!;
    try {
      external = 20 * MiB; // V8 collected
      assert.equal(pacer.check(), false);
      external = 24 * MiB;
      assert.equal(pacer.check(), true, 'growth counts from the lower level');
      assert.equal(collections, 1);
    } finally {
      pacer.stop();
    }
  });

  it('runs real minor collections that free dead Buffers', async () => {
    const pacer = startGarbagePacer({ allowanceBytes: 1 * MiB, checkIntervalMs: 3_600_000 });
    assert.ok(pacer, 'V8 lets the pacer run collections on this runtime');
    try {
      const before = v8.getHeapStatistics().external_memory;
      // Dead at once, like the HTTP parser's body chunks once written to disk.
      for (let i = 0; i < 64; i++) Buffer.alloc(64 * 1024).fill(i);
      assert.ok(v8.getHeapStatistics().external_memory - before >= 2 * MiB, 'the buffers are still counted before a collection');
      assert.equal(pacer.check(), true);
      // V8 releases the freed backing stores from a background sweep, shortly after the collection.
      const deadline = Date.now() + 2_000;
      while (v8.getHeapStatistics().external_memory - before >= 1 * MiB && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
      assert.ok(v8.getHeapStatistics().external_memory - before < 1 * MiB, 'a minor collection freed them');
    } finally {
      pacer.stop();
    }
  });
});
