/** The addon loader and the error bridge: one clear message, stable codes, never an abort. */
import { describe, expect, it } from 'vitest';

import { CowlabError, loadNative } from '../../src/internal.js';
import { native } from '../../src/native.js';

describe('loading the addon', () => {
  it('refuses a non-Linux platform with one clear message', () => {
    expect(() => loadNative({ platform: 'darwin' })).toThrow(/runs only on Linux; this is darwin/);
    try {
      loadNative({ platform: 'win32' });
    } catch (err) {
      expect(err).toBeInstanceOf(CowlabError);
      expect((err as CowlabError).code).toBe('ERR_UNSUPPORTED_PLATFORM');
    }
  });

  it('names the missing file and how to build it, without trying another build', () => {
    expect(() => loadNative({ path: '/nonexistent/cowlab.node' })).toThrow(
      /\/nonexistent\/cowlab\.node: not built[\s\S]*npm install/,
    );
  });
});

describe('native errors', () => {
  it('arrive as CowlabError with the errno name and syscall', () => {
    // mprotect of an address range that is not mapped fails with ENOMEM.
    try {
      native().protectMemory(0x1000n, 4096, 1);
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(CowlabError);
      expect(err).toMatchObject({ code: 'ERR_SYSCALL', errno: 'ENOMEM', syscall: 'mprotect' });
      expect((err as Error).message).toMatch(/mprotect\(\) failed: ENOMEM/);
    }
  });

  it('turn a bad native argument into ERR_INVALID_ARGUMENT instead of aborting', () => {
    expect(() => native().mapMemory(123, 0, 4096)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT' }));
    expect(() => native().readPagemap(0, 4097n, 1)).toThrow(/page-aligned/);
  });

  it('say which PFN is beyond the end of physical memory', () => {
    if (process.getuid?.() !== 0) return; // /proc/kpagecount is root-only; covered by pfnAccess tests
    expect(() => native().readKpage('count', new Float64Array([2 ** 40]))).toThrow(
      expect.objectContaining({ code: 'ERR_SHORT_READ', message: expect.stringMatching(/PFN 1099511627776 is beyond the end/) }),
    );
  });
});

describe('choosing a build', () => {
  it('uses exactly the build named by COWLAB_ADDON when it is set', async () => {
    const { nativePath } = await import('../../src/native.js');
    const chosen = process.env.COWLAB_ADDON;
    if (chosen) expect(nativePath()).toBe(chosen);
    else expect(nativePath()).toMatch(/build\/Release\/cowlab\.node$/);
  });
});
