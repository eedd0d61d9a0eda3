/**
 * Keeps the memory of a streaming server flat by collecting short-lived buffers sooner.
 *
 * Why: every chunk of a request body is copied by Node's HTTP parser into a fresh Buffer. Its
 * bytes live outside the JavaScript heap, so V8 frees them only at the next young-generation
 * collection, which a byte stream (few JavaScript objects per megabyte) triggers only every
 * 20-60 MiB. A 512 MiB push thus held 30-50 MiB of dead chunks on top of the process's ~75 MiB
 * baseline. Looking at the external memory every 10 ms (a microsecond each) and running a
 * minor collection (about a millisecond: nearly everything young is dead) once it has grown by
 * `allowanceBytes` caps that at a few MiB, whatever the size of the layer. Pulls make no such
 * garbage (the blob store reuses its buffers), so this stays idle for them.
 *
 * The young generation itself is kept small by starting node with --max-semi-space-size=1
 * (package.json `start`, the Dockerfile): V8 otherwise grows it to 2 x 16 MiB under load.
 */
import v8 from 'node:v8';
import vm from 'node:vm';

export interface GarbagePacerOptions {
  /** Growth of external memory since the last collection that triggers one. */
  allowanceBytes?: number;
  /** How often the external memory is looked at. */
  checkIntervalMs?: number;
  /** Bytes held outside the JavaScript heap (Buffers); defaults to V8's own count. */
  externalBytes?: () => number;
  /** Runs a young-generation collection; defaults to V8's, exposed at start. */
  collect?: () => void;
}

export interface GarbagePacer {
  /** Looks once (the timer calls this); true when it collected. */
  check(): boolean;
  /** Collections run so far. */
  readonly collections: number;
  stop(): void;
}

const MiB = 1024 * 1024;

/**
 * Starts pacing collections; returns null when the runtime does not let us run them (the
 * process then simply keeps V8's own pacing).
 */
export function startGarbagePacer(options: GarbagePacerOptions = {}): GarbagePacer | null {
  const collect = options.collect ?? minorCollector();
  if (!collect) return null;
  const allowance = options.allowanceBytes ?? 4 * MiB;
  const externalBytes = options.externalBytes ?? (() => v8.getHeapStatistics().external_memory);
  // What was still alive after the last collection: only growth beyond it is garbage to pace.
  let floor = externalBytes();
  let collections = 0;
  const check = (): boolean => {
    const external = externalBytes();
    if (external < floor) floor = external; // V8 collected on its own
    if (external - floor < allowance) return false;
    collect();
    collections++;
    floor = externalBytes();
    return true;
  };
  const timer = setInterval(check, options.checkIntervalMs ?? 10);
  timer.unref();
  return {
    check,
    get collections() {
      return collections;
    },
    stop: () => clearInterval(timer),
  };
}

/** V8's `gc({ type: 'minor' })`, made reachable without starting node with --expose-gc. */
function minorCollector(): (() => void) | null {
  try {
    v8.setFlagsFromString('--expose-gc');
    const gc = vm.runInNewContext('gc') as ((options?: { type: 'minor' | 'major' }) => void) | undefined;
    if (typeof gc !== 'function') return null;
    return () => gc({ type: 'minor' });
  } catch {
    return null;
  }
}
