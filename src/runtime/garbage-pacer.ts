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
 *
 * Looking costs little, but waking up does: on the 2-core VM a 10 ms timer alone costs about
 * 13 ms of CPU per second (an idle registry used 19-27 ms/s, this timer most of it), which a
 * 100 MB/s pull paid as 0.15 s of CPU per GiB. So the pacer looks every 10 ms only while
 * external memory moves: after `idleChecks` looks without growth it looks every
 * `idleIntervalMs`, and any growth it then sees, or any HTTP request starting (the one source
 * of such garbage; node's `http.server.request.start` diagnostics channel), brings it back.
 */
import diagnostics from 'node:diagnostics_channel';
import v8 from 'node:v8';
import vm from 'node:vm';

export interface GarbagePacerOptions {
  /** Growth of external memory since the last collection that triggers one. */
  allowanceBytes?: number;
  /** How often the external memory is looked at while it moves. */
  checkIntervalMs?: number;
  /** How often it is looked at once quiet. */
  idleIntervalMs?: number;
  /** Looks in a row without growth (beyond a small slack) after which the pacer counts as quiet. */
  idleChecks?: number;
  /** Calls `wake` whenever garbage may start to come; returns the unsubscribe. Default: on every HTTP request. */
  wakeOn?: (wake: () => void) => () => void;
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
  /** The interval looked at now: `checkIntervalMs` while memory moves, `idleIntervalMs` once quiet. */
  readonly intervalMs: number;
  stop(): void;
}

const MiB = 1024 * 1024;
/** Growth between two looks that still counts as quiet (a few small allocations). */
const QUIET_SLACK_BYTES = 64 * 1024;

function onHttpRequests(wake: () => void): () => void {
  const listener = () => wake();
  diagnostics.subscribe('http.server.request.start', listener);
  return () => diagnostics.unsubscribe('http.server.request.start', listener);
}

/**
 * Starts pacing collections; returns null when the runtime does not let us run them (the
 * process then simply keeps V8's own pacing).
 */
export function startGarbagePacer(options: GarbagePacerOptions = {}): GarbagePacer | null {
  const collect = options.collect ?? minorCollector();
  if (!collect) return null;
  const allowance = options.allowanceBytes ?? 4 * MiB;
  const externalBytes = options.externalBytes ?? (() => v8.getHeapStatistics().external_memory);
  const activeInterval = options.checkIntervalMs ?? 10;
  const idleInterval = options.idleIntervalMs ?? 250;
  const idleChecks = options.idleChecks ?? 50;
  // What was still alive after the last collection: only growth beyond it is garbage to pace.
  let floor = externalBytes();
  let previous = floor;
  let quietChecks = 0;
  let collections = 0;
  let timer: NodeJS.Timeout | undefined;
  let intervalMs = 0;
  const every = (ms: number) => {
    if (ms === intervalMs) return;
    clearInterval(timer);
    intervalMs = ms;
    timer = setInterval(check, ms);
    timer.unref();
  };
  const wake = () => {
    quietChecks = 0;
    every(activeInterval);
  };
  const check = (): boolean => {
    const external = externalBytes();
    if (external < floor) floor = external; // V8 collected on its own
    if (external > previous + QUIET_SLACK_BYTES) wake();
    else if (++quietChecks >= idleChecks) every(idleInterval);
    previous = external;
    if (external - floor < allowance) return false;
    collect();
    collections++;
    floor = previous = externalBytes();
    return true;
  };
  every(activeInterval);
  const unsubscribe = (options.wakeOn ?? onHttpRequests)(wake);
  return {
    check,
    get collections() {
      return collections;
    },
    get intervalMs() {
      return intervalMs;
    },
    stop: () => {
      unsubscribe();
      clearInterval(timer);
    },
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
