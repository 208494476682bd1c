#!/usr/bin/env bash
# The whole test suite: typecheck, machine unit tests and integration tests against real servers.
set -euo pipefail
cd "$(dirname "$0")/.."
npx tsc --noEmit -p .
mkdir -p test-artifacts
# TAP as before on stdout; at the very end, each failure once with its message (test/support/failure-summary.mjs).
exec node --import tsx --test --test-concurrency=2 --test-timeout=600000 \
  --test-reporter=tap --test-reporter-destination=stdout \
  --test-reporter=./test/support/failure-summary.mjs --test-reporter-destination=stderr \
  test/unit/*.test.ts test/integration/*.test.ts test/chaos/*.test.ts
