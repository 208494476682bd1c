#!/usr/bin/env bash
# The whole test suite: typecheck, machine unit tests and integration tests against real servers.
set -euo pipefail
cd "$(dirname "$0")/.."
npx tsc --noEmit -p .
mkdir -p test-artifacts
exec node --import tsx --test --test-concurrency=2 --test-timeout=600000 test/unit/*.test.ts test/integration/*.test.ts test/chaos/*.test.ts
