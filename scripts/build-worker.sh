#!/usr/bin/env bash
# Build the example Worker (examples/worker) for workerd with worker-build,
# release profile. Output: examples/worker/build/{index.js,index_bg.wasm}
# (build/worker/shim.mjs is worker-build's backwards-compatible alias).
#
#   scripts/build-worker.sh            # build if any input changed since the last build
#   FORCE=1 scripts/build-worker.sh    # build unconditionally
#   WORKER_CRATE=examples/worker-minimal scripts/build-worker.sh   # another Worker crate
#
# Used by test.sh, by the e2e suites (tests/e2e/harness.rs) and as the `[build] command` of the
# root wrangler.toml (so `wrangler dev` / `wrangler deploy` build it too).
# Expects the tools of scripts/cloudflare-tools.sh; set CF_TOOLS_INSTALL=1 to
# run that script first.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

if [ "${CF_TOOLS_INSTALL:-0}" = 1 ]; then
  # shellcheck source=scripts/cloudflare-tools.sh
  CF_TOOLS_QUIET=1 source scripts/cloudflare-tools.sh
else
  # shellcheck source=scripts/cloudflare-env.sh
  source scripts/cloudflare-env.sh
fi

# Size over speed for the Worker (it waits on I/O, and a smaller module starts
# faster): fat LTO, opt-level "z", one codegen unit, and no symbol names
# (`strip`: the linker drops the names section, which worker-build's wasm-opt
# run would otherwise keep; about 190 KB raw, 45 KB gzip). Measured: 0.80 MB
# raw / 316 KB gzip -9. Only this build sees them (native builds keep the
# workspace profile); set any of them in the environment to override, e.g.
# CARGO_PROFILE_RELEASE_STRIP=none for function names in workerd's traces.
export CARGO_PROFILE_RELEASE_LTO="${CARGO_PROFILE_RELEASE_LTO:-fat}"
export CARGO_PROFILE_RELEASE_OPT_LEVEL="${CARGO_PROFILE_RELEASE_OPT_LEVEL:-z}"
export CARGO_PROFILE_RELEASE_CODEGEN_UNITS="${CARGO_PROFILE_RELEASE_CODEGEN_UNITS:-1}"
export CARGO_PROFILE_RELEASE_STRIP="${CARGO_PROFILE_RELEASE_STRIP:-symbols}"
# Panic locations embed source paths: shorten those of the workspace and of
# the registry's crates (the standard library's are precompiled as they are).
registry="${CARGO_HOME:-$HOME/.cargo}/registry/src"
remap="--remap-path-prefix=$root=. --remap-path-prefix=$registry="
export RUSTFLAGS="${RUSTFLAGS:+$RUSTFLAGS }$remap"

crate_dir="${WORKER_CRATE:-examples/worker}"
out_dir="$crate_dir/build"
[ -f "$crate_dir/Cargo.toml" ] || { echo "build-worker: $crate_dir/Cargo.toml not found" >&2; exit 1; }

for tool in worker-build "$WASM_BINDGEN_BIN" "$ESBUILD_BIN" "$WASM_OPT_BIN"; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "build-worker: $tool not found; run scripts/cloudflare-tools.sh first" >&2
    exit 1
  fi
done

# Skip the build when nothing that goes into it changed: a digest over the
# sources and manifests of every workspace crate the Worker can depend on, the
# lockfile, the toolchain and the tool versions.
inputs_digest() {
  {
    find "$crate_dir" collegedb collegedb-derive examples/models \
      \( -path "$out_dir" -o -name target -o -name build \) -prune -o \
      -type f \( -name '*.rs' -o -name 'Cargo.toml' -o -name '*.sql' -o -name '*.js' -o -name '*.mjs' \) \
      -print 2>/dev/null | LC_ALL=C sort | while IFS= read -r f; do
      printf '%s\n' "$f"
      sha256sum <"$f"
    done
    for f in Cargo.toml Cargo.lock rust-toolchain.toml scripts/build-worker.sh; do
      [ -f "$f" ] && sha256sum "$f"
    done
    worker-build --version
    "$WASM_BINDGEN_BIN" --version
    printf 'NO_MINIFY=%s\n' "${NO_MINIFY-unset}"
    printf 'RUSTFLAGS=%s\n' "$RUSTFLAGS"
    printf 'profile=%s/%s/%s/%s\n' "$CARGO_PROFILE_RELEASE_LTO" "$CARGO_PROFILE_RELEASE_OPT_LEVEL" \
      "$CARGO_PROFILE_RELEASE_CODEGEN_UNITS" "$CARGO_PROFILE_RELEASE_STRIP"
  } | sha256sum | awk '{print $1}'
}

stamp="$out_dir/.collegedb-build-stamp"
digest="$(inputs_digest)"
if [ "${FORCE:-0}" != 1 ] && [ -f "$out_dir/index.js" ] && [ -f "$out_dir/index_bg.wasm" ] \
  && [ "$(cat "$stamp" 2>/dev/null || true)" = "$digest" ]; then
  echo "build-worker: $out_dir is up to date" >&2
  exit 0
fi

echo "build-worker: worker-build --release in $crate_dir" >&2
start=$(date +%s)
(cd "$crate_dir" && worker-build --release)
end=$(date +%s)
printf '%s\n' "$digest" >"$stamp"

wasm="$out_dir/index_bg.wasm"
raw=$(wc -c <"$wasm")
gz=$(gzip -9 -c "$wasm" | wc -c)
echo "build-worker: built in $((end - start))s; $wasm: $raw bytes raw, $gz bytes gzip -9" >&2
