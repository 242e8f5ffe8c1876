// bench/time-prediction: calibrate the simulator's cost model once on this kernel, then
// predict the total write time of every built-in scenario and compare it with real processes
// (the median of several kernel-engine runs). Prints each scenario's relative error and, last,
// the median absolute relative error. Target: <= 15 %.
//
// usage: node bench/time-prediction/run.mjs [--repeats 3] [--calibrate-repeats 5]
import { arg, cowlab, fmtNs, median } from '../lib.mjs';

const repeats = Number(arg('repeats', '3'));
const calRepeats = Number(arg('calibrate-repeats', '5'));
const { calibrate, listScenarios, loadScenario, SimEngine, KernelEngine, environment } = await cowlab();

const env = environment();
console.log(`time-prediction: kernel ${env.kernel}, ${env.cpu.model}; calibrating (${calRepeats} repeats)...`);
const { model } = await calibrate({ pages: 4096, repeats: calRepeats, warmup: 1 });
const c = model.constants;
console.log(`  copy ${fmtNs(c.copyNs)}, reuse ${fmtNs(c.reuseNs)}, zero-fill ${fmtNs(c.zeroFillNs)}, fault ${fmtNs(c.faultNs)}, access ${fmtNs(c.accessNs)}`);

const writeTime = (obs) => obs.steps.filter((s) => s.op === 'write').reduce((t, s) => t + (s.timeNs ?? 0), 0);
const sim = new SimEngine({ costModel: model });
const kernel = new KernelEngine();
const rows = [];
for (const { name } of listScenarios()) {
  const trace = loadScenario(name);
  if (!trace.steps.some((s) => s.op === 'write')) continue;
  if (kernel.supports(trace) !== null) {
    console.log(`  ${name.padEnd(32)} not measurable here: ${kernel.supports(trace)}`);
    continue;
  }
  const predicted = writeTime(await sim.run(trace));
  const observed = [];
  for (let r = 0; r < repeats + 1; r++) {
    const t = writeTime(await kernel.run(trace));
    if (r > 0) observed.push(t); // the first run warms the memory up
  }
  const m = median(observed);
  const err = (predicted - m) / m;
  rows.push(err);
  console.log(`  ${name.padEnd(32)} predicted ${fmtNs(predicted).padStart(10)}  measured ${fmtNs(m).padStart(10)}  error ${(err * 100).toFixed(1).padStart(6)} %`);
}
const med = median(rows.map(Math.abs));
console.log(`median absolute relative error over ${rows.length} scenarios: ${(med * 100).toFixed(1)} % (target <= 15 %: ${med <= 0.15 ? 'met' : 'MISSED'})`);
