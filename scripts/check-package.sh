#!/usr/bin/env bash
# The packed tarball as a user gets it: `npm pack` in the clone, then, in an empty temporary
# directory, `npm install -g` of the tarball into a temporary prefix (offline: the runtime
# dependencies are bundled in the tarball, the addon builds from its C++ sources against the
# installed Node's headers), and the installed `cowlab run --quick` outside the clone. Also checks that the
# tarball holds what its README links to (LICENSE, docs/). Used by .ci/run:
#   scripts/check-package.sh            # keeps nothing; prints the run's summary
set -euo pipefail
clone="$(cd "$(dirname "$0")/.." && pwd)"
tmp="$(mktemp -d "${TMPDIR:-/tmp}/cowlab-pack.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT

cd "$clone"
tarball="$(npm pack --silent --pack-destination "$tmp" | tail -n 1)"
echo "packed: $tarball ($(du -h "$tmp/$tarball" | cut -f1))"
listing="$(tar -tzf "$tmp/$tarball")"
for f in package/LICENSE package/README.md package/docs/kernels.md package/bin/cowlab.js package/dist/src/index.js package/binding.gyp package/native/addon.cc; do
  grep -qx "$f" <<<"$listing" || { echo "check-package: $f is not in $tarball" >&2; exit 1; }
done
# Nothing of the development tree: no tests, no build output, and of node_modules only the
# bundled runtime dependencies (bundleDependencies: what makes an offline install possible).
if grep -Eq '^package/(test|build|build-cmake)/' <<<"$listing"; then
  echo "check-package: $tarball holds test/ or build output" >&2; exit 1
fi
for dev in $(node -p "Object.keys(require('./package.json').devDependencies).join(' ')"); do
  if grep -q "^package/node_modules/$dev/" <<<"$listing"; then echo "check-package: $tarball bundles the devDependency $dev" >&2; exit 1; fi
done
for dep in $(node -p "Object.keys(require('./package.json').dependencies).join(' ')"); do
  grep -q "^package/node_modules/$dep/package.json$" <<<"$listing" || { echo "check-package: $tarball does not bundle $dep" >&2; exit 1; }
done

# An empty directory, not the clone: nothing can resolve from it.
cd "$tmp"
# --offline: every dependency is in the tarball; the registry must not be needed.
npm install -g --prefix "$tmp/prefix" --offline --no-audit --no-fund "./$tarball"
bin="$tmp/prefix/bin/cowlab"
[ -x "$bin" ] || { echo "check-package: no cowlab in $tmp/prefix/bin" >&2; exit 1; }
installed="$tmp/prefix/lib/node_modules/cowlab"
[ -f "$installed/build/Release/cowlab.node" ] || { echo "check-package: the addon was not built in $installed" >&2; exit 1; }

"$bin" --version
"$bin" run --quick --out "$tmp/results"
for f in results.json report.html; do
  [ -s "$tmp/results/$f" ] || { echo "check-package: the installed cowlab wrote no $f" >&2; exit 1; }
done
# The library from a user's project beside it: ES module import and CommonJS require of each
# entry point (NODE_PATH reaches the global prefix as a project's node_modules would).
for entry in cowlab cowlab/suite cowlab/internal; do
  NODE_PATH="$tmp/prefix/lib/node_modules" node --input-type=commonjs -e "const m = require('$entry'); if (Object.keys(m).length < 10) throw new Error('$entry: ' + Object.keys(m))"
done
(cd "$tmp" && mkdir -p project/node_modules && ln -s "$installed" project/node_modules/cowlab && cd project \
  && node --input-type=module -e "const { forkWrite } = await import('cowlab'); const r = await forkWrite({ pages: 16, repeats: 1, warmup: 0 }); if (r.runs[0].child.faults !== 16) throw new Error('faults ' + r.runs[0].child.faults)")
echo "check-package: $tarball installs and runs (cowlab run --quick from $installed; import and require of cowlab, cowlab/suite, cowlab/internal)"
