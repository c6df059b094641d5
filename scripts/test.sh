#!/usr/bin/env bash
# The one command that runs every test of the project:
#
#   1. installs/reuses the local Cloudflare tools (scripts/cloudflare-tools.sh);
#   2. `cargo test`: the native tests of the default members (root package,
#      collegedb, collegedb-derive): unit, integration, trybuild UI, doctests;
#   3. builds the example Worker (scripts/build-worker.sh, worker-build --release);
#   4. runs the end-to-end suites against it under workerd, each with its own
#      `wrangler dev` and fresh state: e2e_workerd (the API contract and the
#      remote calls per operation), e2e_admin (administrative routes and
#      their token), e2e_concurrency (racing inserts; updates during a
#      rebalance), e2e_query (queries across shards: filters, pages,
#      aggregates, raw SQL), and e2e_minimal (the minimal Worker,
#      examples/worker-minimal, which that suite builds itself).
#
# Works from any directory, without stdin, with CI=true.
# Knobs: SKIP_E2E=1 (steps 1, 3 and 4 skipped), SKIP_NATIVE=1 (step 2 skipped).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

t_start=$(date +%s)
step() { printf '\n==> %s\n' "$*" >&2; }
elapsed() { echo "$(($(date +%s) - $1))s"; }

if [ "${SKIP_E2E:-0}" != 1 ]; then
  step "tools (scripts/cloudflare-tools.sh)"
  t=$(date +%s)
  # shellcheck source=scripts/cloudflare-tools.sh
  source scripts/cloudflare-tools.sh
  echo "tools: $(elapsed "$t")" >&2
fi

if [ "${SKIP_NATIVE:-0}" != 1 ]; then
  step "native tests (cargo test)"
  t=$(date +%s)
  cargo test
  echo "native tests: $(elapsed "$t")" >&2
fi

if [ "${SKIP_E2E:-0}" != 1 ]; then
  step "build the example Worker (scripts/build-worker.sh)"
  t=$(date +%s)
  bash scripts/build-worker.sh
  echo "worker build: $(elapsed "$t")" >&2

  step "end-to-end tests under workerd (e2e_workerd, e2e_admin, e2e_concurrency, e2e_query, e2e_minimal)"
  t=$(date +%s)
  E2E_SKIP_BUILD=1 cargo test --test e2e_workerd --test e2e_admin --test e2e_concurrency \
    --test e2e_query -- --include-ignored --nocapture
  # Builds the minimal Worker first (E2E_SKIP_BUILD would skip that too).
  cargo test --test e2e_minimal -- --include-ignored --nocapture
  echo "e2e: $(elapsed "$t")" >&2
fi

echo "scripts/test.sh: all tests passed in $(elapsed "$t_start")" >&2
