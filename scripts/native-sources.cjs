#!/usr/bin/env node
// Prints every C++ source under native/ (recursively), one per line, relative to the package
// root. binding.gyp calls it so that adding a file to native/ needs no edit to the build;
// CMakeLists.txt globs the same tree itself.
'use strict';
const fs = require('node:fs');
const path = require('node:path');

const root = path.join(__dirname, '..');
function walk(dir) {
  return fs.readdirSync(path.join(root, dir), { withFileTypes: true })
    .sort((a, b) => a.name.localeCompare(b.name))
    .flatMap((e) => {
      const rel = `${dir}/${e.name}`;
      if (e.isDirectory()) return walk(rel);
      return e.name.endsWith('.cc') ? [rel] : [];
    });
}
process.stdout.write(walk('native').join('\n') + '\n');
