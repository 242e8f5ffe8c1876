/**
 * /proc/<pid>/stat, the fields cowlab needs: the state, the parent and process group, and for
 * a zombie its wait status (a zombie keeps its pid and its status until its parent reaps it);
 * and how a process ended, in words (the one place that says it: the kernel engine, the fork
 * probe and the test helpers all use these).
 */
import { readFileSync } from 'node:fs';
import { constants } from 'node:os';

export interface ProcStat {
  pid: number;
  /** The command name (field 2, without its parentheses). */
  comm: string;
  /** A kernel thread (PF_KTHREAD in field 9): it has no user address space. */
  kernelThread: boolean;
  /** R, S, D, Z (zombie), X (dead), ... */
  state: string;
  ppid: number;
  /** Process group (the kernel engine's p0 leads its own). */
  pgrp: number;
  /** Field 52, exit_code: the waitpid() status once the process has ended, else 0. */
  exitStatus: number;
  /** Field 10, minflt: minor faults the process took. */
  minorFaults: number;
  /** Field 22, starttime: when the process started, in clock ticks (USER_HZ) since boot. */
  startTicks: number;
  /** Field 23, vsize: the size of its address space in bytes (0 once it released it). */
  vsizeBytes: number;
}

/** Fields after the command name start at 3 (state). */
const FIRST_FIELD = 3;
const FLAGS_FIELD = 9;
const EXIT_CODE_FIELD = 52;
const MINFLT_FIELD = 10;
const STARTTIME_FIELD = 22;
const VSIZE_FIELD = 23;
/** include/linux/sched.h: the task is a kernel thread (no user address space). */
const PF_KTHREAD = 0x00200000;

/** Null when there is no such process (never was, or already reaped). */
export function readProcStat(pid: number): ProcStat | null {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return null;
  }
  return parseProcStat(pid, text);
}

/** The fields of a /proc/<pid>/stat text (read here, or by native code that had to read it
 *  before the process was reaped). */
export function parseProcStat(pid: number, text: string): ProcStat {
  // The command name may contain spaces and parentheses: the fields start after the last ')'.
  const close = text.lastIndexOf(')');
  const f = text.slice(close + 2).trim().split(' ');
  const field = (n: number) => Number(f[n - FIRST_FIELD]);
  return {
    pid,
    comm: text.slice(text.indexOf('(') + 1, close),
    state: f[0]!,
    ppid: field(4),
    pgrp: field(5),
    kernelThread: (field(FLAGS_FIELD) & PF_KTHREAD) !== 0,
    exitStatus: field(EXIT_CODE_FIELD),
    minorFaults: field(MINFLT_FIELD),
    startTicks: field(STARTTIME_FIELD),
    vsizeBytes: field(VSIZE_FIELD),
  };
}

/** SIGKILL for 9; null for a number Node has no name for. */
export function signalName(signal: number): string | null {
  return Object.entries(constants.signals).find(([, n]) => n === signal)?.[0] ?? null;
}

/** A waitpid() status of an ended process: its exit code (null when a signal killed it) and
 *  that signal (null when it exited); WIFEXITED / WEXITSTATUS / WTERMSIG. */
export function decodeWaitStatus(status: number): { exitCode: number | null; signal: number | null } {
  const signal = status & 0x7f;
  return signal === 0 ? { exitCode: (status >> 8) & 0xff, signal: null } : { exitCode: null, signal };
}

/** How a process ended, from its waitpid() status: "exited with status 1", "was killed by
 *  signal 9 (SIGKILL)". */
export function describeWaitStatus(status: number): string {
  const { exitCode, signal } = decodeWaitStatus(status);
  if (signal === null) return `exited with status ${exitCode}`;
  const name = signalName(signal);
  return `was killed by signal ${signal}${name === null ? '' : ` (${name})`}`;
}

/** Null while the process runs; otherwise how it ended ("was killed by signal 9 (SIGKILL)"),
 *  from its stat (null: no such process). */
export function describeEnd(s: ProcStat | null): string | null {
  if (s === null) return 'is gone (already reaped)';
  if (s.state !== 'Z' && s.state !== 'X') return null;
  if (!Number.isInteger(s.exitStatus)) return 'exited';
  return describeWaitStatus(s.exitStatus);
}

/** Null while `pid` runs; otherwise how it ended ("was killed by signal 9 (SIGKILL)"). */
export function describeEnded(pid: number): string | null {
  return describeEnd(readProcStat(pid));
}
