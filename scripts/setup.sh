#!/usr/bin/env bash
# Installs what node-mgr and its tests need on Debian 12 with Node 20, as root. Idempotent.
# Never touches an already-installed database server (stock MariaDB/PostgreSQL may be serving).
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
have() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }
# systemd: systemd-analyze for the unit's test (PID 1 need not be systemd); prometheus: promtool.
for pkg in mariadb-server mariadb-backup postgresql build-essential python3 default-jdk-headless maven iproute2 curl wrk openssl chromium systemd prometheus; do
  have "$pkg" || need+=("$pkg")
done
if ((${#need[@]})); then
  echo "setup: installing Debian packages: ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # Package scripts must not start services in a container without an init system.
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# The OS user the database processes run as (postgres refuses to run as root).
if ! id nodemgr >/dev/null 2>&1; then
  echo "setup: creating OS user nodemgr"
  useradd --system --user-group --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin nodemgr
fi

if [[ ! -d node_modules ]] || [[ package-lock.json -nt node_modules/.package-lock.json ]]; then
  echo "setup: npm ci"
  npm ci --no-audit --no-fund
fi
# better-sqlite3 must load: its native module is built from source here (no prebuilt downloads).
node -e "require('better-sqlite3')" 2>/dev/null || npm rebuild better-sqlite3
# The compiled node-mgr that bin/node-mgr.js runs (tests run the sources through tsx).
echo "setup: npm run build"
npm run build --silent

if [[ -f scripts/setup-hdfs.sh ]]; then bash scripts/setup-hdfs.sh; fi
echo "setup: done"
