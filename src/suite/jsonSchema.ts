/**
 * The JSON Schema (draft 2020-12) of results.json, generated from the zod schemas that
 * `report` and `compare` check files with (schema.ts, and each experiment's `raw`), so the two
 * never drift apart. `cowlab schema` prints it.
 *
 * It describes what a file may hold (zod's input side): unknown extra fields are allowed, as
 * the reader ignores them. Each experiment's `raw` is tied to its name with if/then; a raw
 * schema zod cannot express in JSON Schema (a custom check, as model-validation's recorded
 * observations) is left open there, and `cowlab report` still checks it.
 */
import { z } from 'zod';

import { RESULTS_VERSION, ResultsSchema } from './schema.js';
import type { AnyExperiment } from './types.js';

export type JsonSchema = Record<string, unknown>;

const OPTIONS = { io: 'input', unrepresentable: 'any', target: 'draft-2020-12' } as const;

function generate(schema: z.ZodType): JsonSchema {
  const { $schema: _drop, ...rest } = z.toJSONSchema(schema, OPTIONS) as JsonSchema;
  void _drop;
  return rest;
}

export function resultsJsonSchema(experiments: readonly AnyExperiment[]): JsonSchema {
  const base = z.toJSONSchema(ResultsSchema, OPTIONS) as JsonSchema & { properties: Record<string, JsonSchema> };
  const items = (base.properties.experiments as { items: JsonSchema & { properties: Record<string, JsonSchema> } }).items;
  items.properties.name = { type: 'string', enum: experiments.map((e) => e.name), description: 'an experiment this cowlab knows (`cowlab list`)' };
  items.allOf = experiments.map((e) => ({
    if: { properties: { name: { const: e.name } }, required: ['name'] },
    then: { properties: { number: { const: e.number }, raw: { anyOf: [{ $ref: `#/$defs/raw-${e.name}` }, { type: 'null' }] } } },
  }));
  const $defs = Object.fromEntries(experiments.map((e) => [`raw-${e.name}`, { description: `the raw measurements of experiment ${e.number}, ${e.name}`, ...generate(e.raw) }]));
  const { $schema, ...rest } = base;
  return {
    $schema,
    title: `cowlab results.json, version ${RESULTS_VERSION}`,
    description: 'What `cowlab run` writes and `cowlab report` / `cowlab compare` read. Dates are ISO 8601. A metric band\'s `samples` are the values behind it (absent in files written before they were kept).',
    ...rest,
    $defs,
  };
}
