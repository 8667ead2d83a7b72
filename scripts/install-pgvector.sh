#!/usr/bin/env bash
# Makes `CREATE EXTENSION vector` work on the machine's PostgreSQL.
# Order: already there → the distribution's binary package for this major → build from Debian's
# trixie source package against postgresql-server-dev-<major>. Idempotent; needs root for apt.
set -euo pipefail

PGHOST=${PGHOST:-127.0.0.1} PGPORT=${PGPORT:-5432} PGUSER=${PGUSER:-postgres}
export PGHOST PGPORT PGUSER
log() { printf '[pgvector] %s\n' "$*" >&2; }

has_vector() {
  local major=$1
  [ -f "/usr/share/postgresql/$major/extension/vector.control" ]
}

major=$(psql -XAtqd postgres -c 'SHOW server_version_num' 2>/dev/null | cut -c1-2) || {
  log "PostgreSQL does not answer on $PGHOST:$PGPORT as $PGUSER; start it first"; exit 1; }
if has_vector "$major"; then log "pgvector already installed for PostgreSQL $major"; exit 0; fi

SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
apt_updated=""
apt_update() { [ -n "$apt_updated" ] || { $SUDO apt-get update -qq; apt_updated=1; }; }

apt_update
if apt-cache show "postgresql-$major-pgvector" >/dev/null 2>&1; then
  log "installing postgresql-$major-pgvector from the distribution"
  $SUDO apt-get install -y -qq "postgresql-$major-pgvector" >/dev/null
  has_vector "$major" && exit 0
fi

# Build from Debian's trixie source package, on the mirror the machine's apt sources already use.
mirror=$(grep -rhoE 'https?://[^ ]+/debian/?( |$)' /etc/apt/sources.list /etc/apt/sources.list.d/ 2>/dev/null \
  | grep -v security | head -n1 | tr -d ' ' || true)
mirror=${mirror:-http://deb.debian.org/debian}
src=/etc/apt/sources.list.d/ragstream-trixie-src.list
if [ ! -f "$src" ]; then
  log "adding deb-src for trixie on $mirror"
  echo "deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $mirror trixie main" | $SUDO tee "$src" >/dev/null
  apt_updated=""; apt_update
fi
log "installing build dependencies (postgresql-server-dev-$major)"
$SUDO apt-get install -y -qq "postgresql-server-dev-$major" build-essential dpkg-dev >/dev/null
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$work" && apt-get source -qq --download-only pgvector >/dev/null 2>&1 && dpkg-source -x --no-check ./*.dsc src >/dev/null)
log "building pgvector $(cd "$work" && ls ./*.dsc | sed 's/.*_\(.*\)\.dsc/\1/')"
make -s -C "$work/src" PG_CONFIG="/usr/lib/postgresql/$major/bin/pg_config" OPTFLAGS="" >/dev/null
$SUDO make -s -C "$work/src" PG_CONFIG="/usr/lib/postgresql/$major/bin/pg_config" install >/dev/null
has_vector "$major" || { log "pgvector build finished but vector.control is missing"; exit 1; }
log "pgvector installed for PostgreSQL $major"
