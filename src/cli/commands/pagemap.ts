/** `cowlab pagemap`: decoded /proc/<pid>/pagemap entries for a range of pages. */
import { readFileSync } from 'node:fs';

import type { Command } from 'commander';

import { CowlabError, invalidOption } from '../../errors.js';
import { pageSize } from '../../memory/mapping.js';
import { pfnAccess } from '../../pagemap/access.js';
import { checkHasAddressSpace, readKpageCounts, readKpageFlags, readPagemap, type PagemapFields } from '../../pagemap/pagemap.js';
import { integerOption } from '../../options.js';
import { formatCount } from '../../report/format.js';
import { action } from '../run.js';
import { print, printJson, table } from '../output.js';

interface Flags {
  pid: string;
  address: string;
  pages?: string;
  json?: boolean;
}

const FIELDS: PagemapFields = { pid: '--pid', address: '--address', pages: '--pages' };

interface Vma {
  start: bigint;
  end: bigint;
  name: string;
}

function mapsOf(pid: number): Vma[] {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/maps`, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw invalidOption('--pid', `no process with pid ${pid}`);
    throw new CowlabError('ERR_SYSCALL', `cannot read /proc/${pid}/maps: ${code ?? (err as Error).message}`);
  }
  return text.split('\n').filter(Boolean).map((line) => {
    const m = /^([0-9a-f]+)-([0-9a-f]+)\s+\S+\s+\S+\s+\S+\s+\S+\s*(.*)$/.exec(line)!;
    return { start: BigInt(`0x${m[1]}`), end: BigInt(`0x${m[2]}`), name: m[3] ?? '' };
  });
}

/** --address: 0x-hex or decimal, page-aligned; or a mapping name from maps like [heap]. */
function resolveAddress(pid: number, text: string): { address: bigint; vma: Vma | undefined } {
  const ps = BigInt(pageSize());
  const vmas = mapsOf(pid);
  if (/^(0x[0-9a-f]+|\d+)$/i.test(text)) {
    const address = BigInt(text);
    if (address % ps !== 0n) throw invalidOption('--address', `must be page-aligned (a multiple of ${ps}), got ${text}`);
    return { address, vma: vmas.find((v) => v.start <= address && address < v.end) };
  }
  const vma = vmas.find((v) => v.name === text);
  if (!vma) {
    throw invalidOption('--address', `must be an address (0x...) or a mapping name of /proc/${pid}/maps such as [heap] or [stack], got '${text}'`);
  }
  return { address: vma.start, vma };
}

export function registerPagemap(program: Command): void {
  program
    .command('pagemap')
    .description('dump decoded /proc/<pid>/pagemap entries (PFN, present, exclusive, ...) for a range of pages')
    .requiredOption('--pid <pid>', 'process to inspect (needs ptrace-read access: same user, or root)')
    .requiredOption('--address <addr>', 'first page: 0x-hex address, or a mapping name like [heap] or [stack]')
    .option('--pages <n>', 'pages to read (default: to the end of the mapping, at most 64)')
    .option('--json', 'print JSON: { pid, address, pfnVisible, entries: [...] }')
    .addHelpText(
      'after',
      `
Fields: pfn (0 without CAP_SYS_ADMIN), present, exclusive (mapped by this process only),
file (file page or shared anonymous), swapped, softDirty; as root also kpagecount (how many
page tables map the frame) and the kpageflags thp / zero / anon bits.

Example:
  cowlab pagemap --pid $$ --address '[stack]' --pages 8`,
    )
    .action(
      action(async (flags: Flags) => {
        const pid = integerOption('--pid', flags.pid, { min: 1 });
        checkHasAddressSpace(pid, FIELDS.pid); // a kernel thread's maps are empty: say why first
        const { address, vma } = resolveAddress(pid, flags.address);
        const ps = BigInt(pageSize());
        const toEnd = vma ? Number((vma.end - address) / ps) : 1;
        const pages = flags.pages === undefined
          ? Math.min(64, toEnd)
          : integerOption('--pages', flags.pages, { min: 1, max: 1 << 24 });
        const access = pfnAccess();
        const entries = readPagemap(pid, address, pages, FIELDS);
        const counts = access.pfnVisible && access.kpagecount ? readKpageCounts(entries.pfn) : null;
        const flagsList = access.pfnVisible && access.kpageflags ? readKpageFlags(entries.pfn) : null;
        const rows = Array.from({ length: pages }, (_, i) => {
          const e = entries.at(i);
          const f = flagsList && e.present ? flagsList.at(i) : null;
          return {
            page: i,
            address: `0x${(address + BigInt(i) * ps).toString(16)}`,
            ...e,
            kpagecount: counts && e.present ? counts[i]! : null,
            thp: f ? f.thp : null,
            zeroPage: f ? f.zeroPage : null,
            anon: f ? f.anon : null,
          };
        });
        if (flags.json) {
          printJson({
            pid, address: `0x${address.toString(16)}`, mapping: vma?.name ?? null, pfnVisible: access.pfnVisible,
            pfnReason: access.pfnReason, entries: rows,
          });
          return;
        }
        print(`pid ${pid}, ${formatCount(pages)} pages from 0x${address.toString(16)}${vma ? ` (mapping ${vma.name || 'anonymous'})` : ' (not mapped)'}`);
        if (!access.pfnVisible) print(`note: ${access.pfnReason}`);
        const yn = (b: boolean | null) => (b === null ? '-' : b ? 'yes' : '.');
        print(table(
          ['page', 'address', 'present', 'pfn', 'exclusive', 'file/shm', 'swapped', 'kpagecount', 'thp', 'zero', 'anon'],
          rows.map((r) => [r.page, r.address, yn(r.present), r.present ? (access.pfnVisible ? `0x${r.pfn.toString(16)}` : 'hidden') : '-',
            yn(r.exclusive), yn(r.file), yn(r.swapped), r.kpagecount ?? '-', yn(r.thp), yn(r.zeroPage), yn(r.anon)]),
        ));
        const present = entries.count('present');
        print(`${formatCount(present)} present, ${formatCount(entries.count('exclusive'))} exclusive, ${formatCount(present - entries.count('exclusive'))} shared`);
      }),
    );
}
