#!/usr/bin/env bash
# Installs what backupbot's demo and tests need from the OS: a PostgreSQL server (the
# throwaway cluster), its client tools (pg_dump/pg_restore), PgBouncer, zstd and age (the tests
# decrypt backups with the age CLI as a person restoring by hand would). Debian/Ubuntu only;
# elsewhere it says what to install.
set -euo pipefail

need=()
command -v zstd >/dev/null 2>&1 || need+=(zstd)
command -v age >/dev/null 2>&1 || need+=(age)
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && ! command -v initdb >/dev/null 2>&1; then
  need+=(postgresql)
fi
command -v pg_restore >/dev/null 2>&1 || need+=(postgresql-client)
# the test cluster speaks TLS (sslmode=require, as Neon, Supabase and Render need) with a
# self-signed certificate openssl makes
command -v openssl >/dev/null 2>&1 || need+=(openssl)
# the connection-pitfall tests put a real PgBouncer (transaction pooling) in front
command -v pgbouncer >/dev/null 2>&1 || [ -x /usr/sbin/pgbouncer ] || need+=(pgbouncer)
[ ${#need[@]} -eq 0 ] && exit 0

if ! command -v apt-get >/dev/null 2>&1; then
  echo "Please install: ${need[*]} (PostgreSQL server and client tools, zstd, age)" >&2
  exit 1
fi
sudo=""
[ "$(id -u)" -ne 0 ] && sudo="sudo"
echo "Installing ${need[*]} with apt-get" >&2
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
