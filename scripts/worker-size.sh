#!/usr/bin/env bash
# The size of the Workers' modules, by hand (not part of the tests): builds the
# example Worker (examples/worker: three models, queries, raw SQL, admin
# routes) and the minimal Worker (examples/worker-minimal: one model, its
# CRUD, lookup and list routes) with scripts/build-worker.sh, and prints each
# module's size raw and gzip -9. With `twiggy` on the PATH (`cargo install
# twiggy`), also its largest items: set STRIP=none so the names survive.
#
#   bash scripts/worker-size.sh
#   STRIP=none bash scripts/worker-size.sh   # with function names, for twiggy
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

if [ -n "${STRIP:-}" ]; then
  export CARGO_PROFILE_RELEASE_STRIP="$STRIP"
fi

table="$(mktemp)"
trap 'rm -f "$table"' EXIT
printf '| Worker | raw bytes | gzip -9 bytes |\n|---|---:|---:|\n' >"$table"
for crate in examples/worker examples/worker-minimal; do
  WORKER_CRATE="$crate" CF_TOOLS_INSTALL=1 bash scripts/build-worker.sh
  wasm="$crate/build/index_bg.wasm"
  printf '| %s | %s | %s |\n' "$crate" "$(wc -c <"$wasm")" "$(gzip -9 -c "$wasm" | wc -c)" >>"$table"
  if command -v twiggy >/dev/null 2>&1; then
    echo "== $crate: twiggy top 15" >&2
    twiggy top -n 15 "$wasm" >&2
  fi
done
cat "$table"
