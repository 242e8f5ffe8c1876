/** `cowlab kernels`: the kernels cowlab can run on (list, fetch) and the profile table. */
import type { Command } from 'commander';

import { environment } from '../../env/environment.js';
import { profileFor, profileTable } from '../../engines/sim/profiles.js';
import { invalidOption } from '../../errors.js';
import { describeValue, type ConfigFact } from '../../kernels/config.js';
import { runningKernelFacts } from '../../kernels/facts.js';
import { availableDebianKernels, obtainKernel } from '../../kernels/obtain.js';
import { parseKernelList } from '../../kernels/spec.js';
import { kernelBytes, kernelsDir, listCachedKernels, type CachedKernel } from '../../kernels/store.js';
import { parseVersion } from '../../kernels/version.js';
import { formatBytes } from '../../report/format.js';
import { findTool } from '../../util/tools.js';
import { action } from '../run.js';
import { print, printJson, table } from '../output.js';
import { markdownTable } from '../../report/table.js';

export const PROFILE_TABLE_HEAD = ['switch', 'flag', 'value', 'kernels', 'kernel change (commit)', 'where'];

const SHOWN_CONFIG: ConfigFact[] = ['CONFIG_PROC_PAGE_MONITOR', 'CONFIG_TRANSPARENT_HUGEPAGE', 'CONFIG_NO_PAGE_MAPCOUNT'];

function cachedJson(k: CachedKernel) {
  return { ...k, bytes: kernelBytes(k) };
}

function listKernels(json: boolean): void {
  const env = environment();
  const host = runningKernelFacts(env);
  const cached = listCachedKernels();
  const apt = findTool('apt-cache') ? availableDebianKernels() : [];
  if (json) {
    printJson({ host, cacheDir: kernelsDir(), cached: cached.map(cachedJson), debian: apt });
    return;
  }
  const cfg = (c: CachedKernel['config'], k: ConfigFact) => describeValue(c, k);
  const rows = [
    ['host', host.release, host.version ?? '?', 'the running kernel (no guest)', ...SHOWN_CONFIG.map((k) => cfg(host.config, k)), '-'],
    ...cached.map((k) => [
      k.spec, k.release, k.version ?? '?', `${k.source}: ${k.origin}`, ...SHOWN_CONFIG.map((o) => cfg(k.config, o)), formatBytes(kernelBytes(k)),
    ]),
  ];
  print(table(['kernel', 'release', 'version', 'from', 'pagemap', 'THP', 'no per-page mapcount', 'size'], rows, ['left', 'left', 'left', 'left', 'left', 'left', 'left', 'right']));
  print(`cache: ${kernelsDir()}`);
  if (apt.length > 0) {
    print();
    print("Debian's kernels (the apt lists of this machine; newest per series):");
    print(table(
      ['spec', 'package', 'version', 'cached'],
      apt.map((a) => [a.spec, a.pkg?.name ?? '-', a.pkg?.version ?? a.why ?? '', a.pkg && cached.some((c) => c.packageVersion === a.pkg!.version) ? 'yes' : `no: cowlab kernels fetch ${a.spec}`]),
      ['left', 'left', 'left', 'left'],
    ));
  } else {
    print("Debian's kernels: not listed (no apt-cache on this machine: `apt-get install apt`).");
  }
  print();
  print('Use one with --kernel <spec> on validate, run-trace, run and env (any other spec: a .deb, a bzImage, a build tree).');
}

export function registerKernels(program: Command): void {
  const kernels = program
    .command('kernels')
    .description('list the kernels cowlab can boot in a guest, fetch one, show the kernel profiles')
    .addHelpText(
      'after',
      `
A kernel spec is one of:
  host                   the running kernel (no guest)
  debian:6.1, debian:6.12  the newest Debian linux-image-<series>.*-cloud-amd64 (apt-get download)
  debian:6.1.192-3       that exact package version
  ./linux-image-....deb  a kernel package file
  ./bzImage              a kernel image (its config and modules are taken from beside it)
  ~/src/linux            a built kernel tree (arch/x86/boot/bzImage, .config, the .ko files)
Kernels are kept in $XDG_CACHE_HOME/cowlab/kernels (default ~/.cache/cowlab).

Examples:
  cowlab kernels
  cowlab kernels fetch debian:6.1 debian:6.12
  cowlab kernels profiles
  cowlab kernels profiles --kernel 6.12`,
    );
  kernels
    .command('list', { isDefault: true })
    .description('the running kernel, the cached ones, and the Debian kernels apt offers')
    .option('--json', 'print JSON')
    .action(action((flags: { json?: boolean }) => listKernels(flags.json === true)));
  kernels
    .command('fetch')
    .description('obtain kernels into the cache (download, unpack, record release and config)')
    .argument('<specs...>', 'kernel specs (see `cowlab kernels --help`)')
    .option('--refresh', 'obtain them again even when cached')
    .option('--json', 'print the cached kernels as JSON')
    .action(
      action(async (args: string[], flags: { refresh?: boolean; json?: boolean }) => {
        const specs = parseKernelList(args);
        const out: CachedKernel[] = [];
        for (const spec of specs) {
          if (spec.kind === 'host') {
            process.stderr.write('cowlab: host is the running kernel: nothing to fetch\n');
            continue;
          }
          const k = await obtainKernel(spec, { refresh: flags.refresh === true, say: (l) => process.stderr.write(`cowlab: ${spec.text}: ${l}\n`) });
          out.push(k);
        }
        if (flags.json) return printJson(out.map(cachedJson));
        for (const k of out) print(`${k.spec}: ${k.release} (${k.version ?? 'version unknown'}) in ${k.dir}`);
      }),
    );
  kernels
    .command('profiles')
    .description("the simulator's kernel profile table: which COW behaviour holds on which kernel, and the change behind it")
    .option('--kernel <release>', "one kernel's profile (a release such as 6.1 or 6.12.117, or host)")
    .option('--json', 'print JSON')
    .option('--markdown', 'print the table as markdown (docs/kernels.md holds this one)')
    .action(
      action((flags: { kernel?: string; json?: boolean; markdown?: boolean }) => {
        if (flags.kernel !== undefined) {
          const which = flags.kernel === 'host' ? runningKernelFacts(environment()) : flags.kernel.replace(/^debian:/, '');
          if (typeof which === 'string' && parseVersion(which) === null) throw invalidOption('--kernel', `'${flags.kernel}' is not a kernel release (6.1, 6.12.117) or host`);
          const p = profileFor(which);
          if (flags.json) return printJson(p);
          print(`profile ${p.name} (chosen for ${p.version}):`);
          print(table(['switch', 'flag', 'value', 'because'], p.entries.map((e) => [e.option, e.flag, e.value, e.because]), ['left', 'left', 'left', 'left']));
          for (const c of p.caveats) print(`note: ${c}`);
          return;
        }
        const rows = profileTable();
        if (flags.json) return printJson(rows.map(([option, flag, value, kernels, change, where]) => ({ option, flag, value, kernels, change, where })));
        if (flags.markdown) return print(markdownTable(PROFILE_TABLE_HEAD, rows));
        print(table(PROFILE_TABLE_HEAD, rows, PROFILE_TABLE_HEAD.map(() => 'left' as const)));
        print();
        print('Run-time knobs read on the kernel under test: --huge-zero-page (transparent_hugepage/use_zero_page), --fault-around (fault_around_bytes).');
      }),
    );
}
