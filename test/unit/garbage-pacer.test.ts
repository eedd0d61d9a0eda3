import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
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
    idleIntervalMs: 7_200_000,
    idleChecks: 5,
    wakeOn: () => () => undefined,
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
      // V8 releases the freed backing stores from a background sweep, shortly after the
      // collection; on a loaded machine (CI runs two test files at once on two cores) that thread
      // waited more than 2 s once, so the wait is generous (it ends as soon as they are freed).
      const deadline = Date.now() + 15_000;
      while (v8.getHeapStatistics().external_memory - before >= 1 * MiB && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
      assert.ok(v8.getHeapStatistics().external_memory - before < 1 * MiB, 'a minor collection freed them');
    } finally {
      pacer.stop();
    }
  });

  it('looks less often once external memory stops moving, and often again as soon as it grows', () => {
    const memory = fakePacer(4);
    try {
      assert.equal(memory.pacer.intervalMs, 3_600_000);
      for (let i = 0; i < 4; i++) memory.pacer.check();
      assert.equal(memory.pacer.intervalMs, 3_600_000, 'not quiet for long enough yet');
      memory.pacer.check();
      assert.equal(memory.pacer.intervalMs, 7_200_000, 'quiet: the timer wakes the process less');
      memory.allocate(1); // a push starts streaming
      assert.equal(memory.pacer.check(), false);
      assert.equal(memory.pacer.intervalMs, 3_600_000);
      memory.allocate(3);
      assert.equal(memory.pacer.check(), true, 'the allowance counts across the change of pace');
    } finally {
      memory.pacer.stop();
    }
  });

  it('looks often again when an HTTP request starts', async () => {
    const pacer = startGarbagePacer({ checkIntervalMs: 3_600_000, idleIntervalMs: 7_200_000, idleChecks: 1, externalBytes: () => 0, collect: () => undefined })!;
    const server = http.createServer((_req, res) => res.end('ok'));
    try {
      pacer.check();
      assert.equal(pacer.intervalMs, 7_200_000);
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      const response = await fetch(`http://127.0.0.1:${(server.address() as AddressInfo).port}/`);
      assert.equal(await response.text(), 'ok');
      assert.equal(pacer.intervalMs, 3_600_000);
    } finally {
      pacer.stop();
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }
  });
});
