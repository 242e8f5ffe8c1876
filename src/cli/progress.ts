/**
 * Progress on stderr: a bar when stderr is a terminal, otherwise plain lines (at most one per
 * second, none for work that ends within the first second), so logs stay readable.
 */
import cliProgress from 'cli-progress';

import { escapeControls } from '../report/format.js';

export interface Progress {
  update(done: number, total: number, detail?: string): void;
  stop(): void;
}

export function progress(label: string, enabled = true): Progress {
  if (!enabled) return { update() {}, stop() {} };
  if (process.stderr.isTTY) {
    const bar = new cliProgress.SingleBar(
      { stream: process.stderr, format: `${label} [{bar}] {value}/{total} {detail}`, hideCursor: true, clearOnComplete: true },
      cliProgress.Presets.shades_classic,
    );
    let started = false;
    return {
      update(done, total, raw = '') {
        const detail = escapeControls(raw); // trace names are the user's: no escape codes
        if (!started) {
          bar.start(total, 0, { detail });
          started = true;
        }
        bar.setTotal(total);
        bar.update(done, { detail });
      },
      stop() {
        if (started) bar.stop();
      },
    };
  }
  let last = Date.now();
  let printed = false;
  return {
    update(done, total, raw = '') {
      const detail = escapeControls(raw);
      const now = Date.now();
      if (now - last < 1000 && !(done >= total && printed)) return;
      last = now;
      printed = true;
      process.stderr.write(`${label}: ${done}/${total}${detail ? ` ${detail}` : ''}\n`);
    },
    stop() {},
  };
}
