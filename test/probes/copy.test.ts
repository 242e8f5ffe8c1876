/**
 * timeEagerCopy on real memory. The probe maps its destination and unmaps it before returning
 * (native/eagercopy.cc), so the copied bytes cannot be read back from here; what the copy did
 * is checked where it shows: every source page was read (pagemap), every destination page
 * was written (this process's page faults), the source bytes are unchanged, and the
 * destination is gone afterwards.
 */
import { describe, expect, it } from 'vitest';

import { COPY_DESTINATIONS, Mapping, pageSize, pfnAccess, readPagemap, smapsRollup, timeEagerCopy } from '../../src/index.js';
import { thrownCowlabError } from '../helpers/errors.js';

const PAGES = 1024;
const asRoot = pfnAccess().pfnVisible;

function withMapping<T>(pages: number, use: (m: Mapping) => T): T {
  const m = Mapping.create({ pages, thp: 'never' });
  try {
    return use(m);
  } finally {
    m.unmap();
  }
}

describe('timeEagerCopy', () => {
  it('reads every source page: an untouched source ends with every page mapped (the zero page)', () => {
    withMapping(PAGES, (m) => {
      expect(readPagemap(process.pid, m.address, PAGES).present.every((p) => p === 0)).toBe(true);
      timeEagerCopy({ source: m, destination: 'populated' });
      const pm = readPagemap(process.pid, m.address, PAGES);
      expect(pm.present.every((p) => p === 1)).toBe(true);
      // As root: all of them one frame, the shared zero page (reads allocate nothing).
      if (asRoot) expect(new Set(pm.pfn).size).toBe(1);
    });
  });

  it.each(COPY_DESTINATIONS)('writes every page of a %s destination (one first-touch fault each) and leaves the source bytes as they were', (destination) => {
    withMapping(PAGES, (m) => {
      const words = new Uint32Array(m.buffer);
      for (let i = 0; i < words.length; i++) words[i] = (i * 2654435761) >>> 0;
      const before = process.resourceUsage().minorPageFault;
      const t = timeEagerCopy({ source: m, destination });
      const faults = process.resourceUsage().minorPageFault - before;
      expect(t).toMatchObject({ destination, bytes: PAGES * pageSize() });
      expect(t.ns).toBeGreaterThan(0);
      expect(faults).toBeGreaterThanOrEqual(PAGES);
      let changed = 0;
      for (let i = 0; i < words.length; i++) if (words[i] !== (i * 2654435761) >>> 0) changed++;
      expect(changed).toBe(0);
    });
  });

  it('unmaps its destination: copying 64 MiB leaves the resident memory where it was', () => {
    withMapping(16384, (m) => {
      m.touch('write');
      const before = smapsRollup('self').rssBytes;
      for (let i = 0; i < 3; i++) timeEagerCopy({ source: m, destination: 'fresh' });
      // A leaked destination would add 64 MiB per call.
      expect(smapsRollup('self').rssBytes - before).toBeLessThan(32 * 2 ** 20);
    });
  });
});

describe('timeEagerCopy refuses, before copying', () => {
  it('a source that is not a Mapping', () => {
    const e = thrownCowlabError(() => timeEagerCopy({ source: { address: 0n, bytes: 4096 } as never, destination: 'fresh' }));
    expect(e).toMatchObject({ code: 'ERR_INVALID_OPTION', field: 'source' });
  });

  it('an unknown destination', () => {
    withMapping(4, (m) => {
      const e = thrownCowlabError(() => timeEagerCopy({ source: m, destination: 'warm' as never }));
      expect(e.message).toBe("destination: must be one of fresh, populated, got 'warm'");
    });
  });

  it('an unmapped source', () => {
    const m = Mapping.create({ pages: 4 });
    m.unmap();
    expect(thrownCowlabError(() => timeEagerCopy({ source: m, destination: 'fresh' })).code).toBe('ERR_RELEASED');
  });

  it('a source in use by a running measurement', () => {
    withMapping(4, (m) => {
      const release = m.acquire('a test');
      try {
        expect(thrownCowlabError(() => timeEagerCopy({ source: m, destination: 'fresh' })).code).toBe('ERR_BUSY');
      } finally {
        release();
      }
    });
  });

  it('a source with an unreadable page (the memcpy would crash the process), and copies it once readable again', () => {
    withMapping(8, (m) => {
      m.protect('none', 3, 4);
      const e = thrownCowlabError(() => timeEagerCopy({ source: m, destination: 'fresh' }));
      expect(e).toMatchObject({ code: 'ERR_INVALID_OPTION', field: 'source' });
      expect(e.message).toMatch(/^source: must be readable throughout: 0x[0-9a-f]+-0x[0-9a-f]+ is ---p$/);
      m.protect('rw', 3, 4);
      expect(timeEagerCopy({ source: m, destination: 'fresh' }).bytes).toBe(8 * pageSize());
    });
  });
});
