/**
 * The swap of the machine cowlab runs on, from /proc/swaps: what reclaim (MADV_PAGEOUT, the
 * trace's `pageout` op) can do with an anonymous page, and so the simulator's `swap` switch.
 * cowlab never adds or removes swap on a host: a guest it boots gets a zram swap of its own
 * (src/guest/initramfs.ts), as its whole machine is the run's.
 */
import { readFileSync } from 'node:fs';

import type { SwapDevice } from '../engines/sim/options.js';

export interface SwapArea {
  /** /dev/zram0, /swapfile, ... */
  name: string;
  sizeBytes: number;
  usedBytes: number;
}

export interface SwapInfo {
  /** The simulator's view: 'none', or how the device that takes new pages does its I/O. */
  kind: SwapDevice;
  areas: SwapArea[];
}

/**
 * Devices that complete I/O synchronously (the kernel's SWP_SYNCHRONOUS_IO: zram, brd ramdisks,
 * pmem): a page written there is freed at once, and a swap-in can skip the swap cache.
 */
const SYNCHRONOUS = /^\/dev\/(zram|ram|pmem)\d+/;

/** /proc/swaps as text -> areas (the header line skipped). */
export function parseProcSwaps(text: string): SwapArea[] {
  const out: SwapArea[] = [];
  for (const line of text.split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length < 5) continue;
    // Size and Used are in KiB; a name with spaces is octal-escaped (\040) by the kernel.
    out.push({ name: f[0]!, sizeBytes: Number(f[2]) * 1024, usedBytes: Number(f[3]) * 1024 });
  }
  return out;
}

/**
 * The kind of swap reclaim writes to. Linux fills the area of highest priority first; cowlab
 * names the kind of the first area listed with room, and 'block' when areas of both kinds have
 * room (then the outcome is not known in advance, and a block device's rules are the safer
 * prediction: its pages stay in the swap cache).
 */
export function swapKind(areas: readonly SwapArea[]): SwapDevice {
  const open = areas.filter((a) => a.sizeBytes > a.usedBytes);
  if (open.length === 0) return 'none';
  return open.every((a) => SYNCHRONOUS.test(a.name)) ? 'sync-io' : 'block';
}

/** This machine's swap now (no swap, or no /proc/swaps: kind 'none'). */
export function readSwap(): SwapInfo {
  let text = '';
  try {
    text = readFileSync('/proc/swaps', 'utf8');
  } catch {
    return { kind: 'none', areas: [] };
  }
  const areas = parseProcSwaps(text);
  return { kind: swapKind(areas), areas };
}
