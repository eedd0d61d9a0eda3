/**
 * Deploy commands run in process groups of their own (the group id is the shell's pid). The agent
 * records the group with enough to recognise it after a crash (the boot and the leader's start
 * time, from Linux's /proc), so that on restart it kills what an earlier process left running, and
 * never a stranger that reused the number. Without /proc it falls back to the bare group id.
 */
import fs from 'node:fs';

export interface ProcessIdentity {
  pgid: number;
  /** /proc/sys/kernel/random/boot_id: numbers are only meaningful within one boot. */
  bootId: string | null;
  /** The leader's start time in clock ticks since boot (field 22 of /proc/<pid>/stat). */
  startTime: string | null;
}

interface ProcStat {
  state: string;
  pgrp: number;
  startTime: string;
}

function readStat(pid: number | string): ProcStat | null {
  let text: string;
  try {
    text = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return null;
  }
  // "pid (comm) state ppid pgrp …": comm may hold spaces and parentheses; the fields follow the last ")".
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
  if (fields.length < 20) return null;
  return { state: fields[0]!, pgrp: Number(fields[2]), startTime: fields[19]! };
}

function bootId(): string | null {
  try {
    return fs.readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
  } catch {
    return null;
  }
}

const hasProc = () => fs.existsSync('/proc/self/stat');

/** What identifies the group a just-spawned leader heads. */
export function identify(pid: number): ProcessIdentity {
  return { pgid: pid, bootId: bootId(), startTime: readStat(pid)?.startTime ?? null };
}

/**
 * Whether the group still has a live member (zombies do not count: they are dead, and with an
 * init that does not reap them they would look alive forever).
 */
export function groupAlive(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
  if (!hasProc()) return true;
  let entries: string[];
  try {
    entries = fs.readdirSync('/proc');
  } catch {
    return true;
  }
  for (const entry of entries) {
    if (!/^\d+$/.test(entry)) continue;
    const stat = readStat(entry);
    if (stat && stat.pgrp === pgid && stat.state !== 'Z' && stat.state !== 'X') return true;
  }
  return false;
}

/**
 * Whether a recorded group is still the one the agent started: same boot, and its leader is
 * either the same process or gone (a group id is not reused while the group has members).
 */
export function isSameGroup(identity: ProcessIdentity): boolean {
  const boot = bootId();
  if (identity.bootId !== null && boot !== null && identity.bootId !== boot) return false;
  const leader = readStat(identity.pgid);
  if (!leader) return true;
  if (identity.startTime !== null && leader.startTime !== identity.startTime) return false;
  return leader.pgrp === identity.pgid;
}

export function signalGroup(pgid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pgid, signal);
  } catch {
    // Already gone.
  }
}

/**
 * SIGTERM to the group, SIGKILL once `graceMs` have passed, each followed by a bounded wait for
 * the group to be gone. Resolves to whether it is.
 */
export async function killGroup(pgid: number, graceMs: number, pollMs = 50): Promise<boolean> {
  for (const [signal, waitMs] of [['SIGTERM', graceMs], ['SIGKILL', 5_000]] as const) {
    if (!groupAlive(pgid)) return true;
    signalGroup(pgid, signal);
    const until = Date.now() + waitMs;
    while (Date.now() < until) {
      await new Promise((resolve) => setTimeout(resolve, pollMs));
      if (!groupAlive(pgid)) return true;
    }
  }
  return !groupAlive(pgid);
}
