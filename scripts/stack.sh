#!/usr/bin/env bash
# The local stack without Docker: Kafka 4.x (KRaft, from Maven Central jars), Apicurio Registry
# (Confluent-compatible API), the machine's Redis (+ a 3-node Redis Cluster for store conformance
# tests), the machine's PostgreSQL with pgvector, and the change-data-capture source: a PostgreSQL
# cluster of its own with wal_level=logical (the machine's server is left as it is) and Kafka Connect
# with the Debezium PostgreSQL connector and Apicurio's Avro converter (jars from Maven Central).
#
#   scripts/stack.sh up       start what is not running, wait until healthy (idempotent)
#   scripts/stack.sh down     stop only what `up` started
#   scripts/stack.sh status   one line per service: up/down and its address
#
# State (data, logs, pid files, downloaded jars) lives in $RAGSTREAM_STACK_DIR (default .stack/).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=env.sh
. "$ROOT/scripts/env.sh"
STATE=$RAGSTREAM_STACK_DIR
mkdir -p "$STATE"

say() { printf '[stack] %s\n' "$*" >&2; }
die() { printf '[stack] error: %s\n' "$*" >&2; exit 1; }
host_of() { local a=${1#*://}; a=${a#*@}; a=${a%%/*}; echo "${a%:*}"; }
port_of() { local a=${1#*://}; a=${a#*@}; a=${a%%/*}; echo "${a##*:}"; }
port_open() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }
pid_alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

# wait_for NAME SECONDS COMMAND... — polls COMMAND every half second.
wait_for() {
  local name=$1 secs=$2; shift 2
  local deadline=$((SECONDS + secs))
  until "$@"; do
    [ $SECONDS -lt $deadline ] || return 1
    sleep 0.5
  done
}

first_broker=${RAGSTREAM_KAFKA_BROKERS%%,*}
KAFKA_HOST=$(host_of "$first_broker"); KAFKA_PORT=$(port_of "$first_broker")
REG_HOST=$(host_of "$RAGSTREAM_SCHEMA_REGISTRY_URL"); REG_PORT=$(port_of "$RAGSTREAM_SCHEMA_REGISTRY_URL")
REDIS_HOST=$(host_of "$RAGSTREAM_REDIS_URL"); REDIS_PORT=$(port_of "$RAGSTREAM_REDIS_URL")
PG_HOST=$(host_of "$RAGSTREAM_POSTGRES_URL"); PG_PORT=$(port_of "$RAGSTREAM_POSTGRES_URL")
PG_DB=${RAGSTREAM_POSTGRES_URL##*/}; PG_DB=${PG_DB%%\?*}
PG_USER=${RAGSTREAM_POSTGRES_URL#*://}; PG_USER=${PG_USER%%@*}; PG_USER=${PG_USER%%:*}
IFS=',' read -r -a CLUSTER_NODES <<<"$RAGSTREAM_REDIS_CLUSTER_NODES"
CONNECT_HOST=$(host_of "$RAGSTREAM_CONNECT_URL"); CONNECT_PORT=$(port_of "$RAGSTREAM_CONNECT_URL")
SRC_HOST=$(host_of "$RAGSTREAM_SOURCE_POSTGRES_URL"); SRC_PORT=$(port_of "$RAGSTREAM_SOURCE_POSTGRES_URL")
SRC_DB=${RAGSTREAM_SOURCE_POSTGRES_URL##*/}; SRC_DB=${SRC_DB%%\?*}
SRC_USER=${RAGSTREAM_SOURCE_POSTGRES_URL#*://}; SRC_USER=${SRC_USER%%@*}; SRC_USER=${SRC_USER%%:*}
# The source cluster's name for pg_createcluster/pg_ctlcluster.
SRC_CLUSTER=${RAGSTREAM_SOURCE_PG_CLUSTER:-ragstream_cdc}

# ---------------------------------------------------------------- Kafka
kafka_lib=$STATE/kafka/lib-$RAGSTREAM_KAFKA_VERSION
kafka_java() { java -Xms256m -Xmx1g -Dlog4j2.configurationFile="$ROOT/stack/kafka/log4j2.properties" \
  -Dkafka.logs.dir="$STATE/kafka/logs" -cp "$kafka_lib/*" "$@"; }

kafka_fetch() {
  [ -f "$kafka_lib/.complete" ] && return 0
  say "fetching Apache Kafka $RAGSTREAM_KAFKA_VERSION jars from Maven Central"
  mvn -q -B -f "$ROOT/stack/kafka/pom.xml" dependency:copy-dependencies -Dkafka.version="$RAGSTREAM_KAFKA_VERSION" \
    -DincludeScope=runtime -DoutputDirectory="$kafka_lib" >"$STATE/kafka-fetch.log" 2>&1 \
    || die "mvn could not fetch the Kafka jars; see $STATE/kafka-fetch.log"
  touch "$kafka_lib/.complete"
}

kafka_ready() { port_open "$KAFKA_HOST" "$KAFKA_PORT" && grep -q 'Kafka Server started' "$STATE/kafka/logs/server.log" 2>/dev/null; }

kafka_up() {
  # The jars are fetched even when a broker already runs: the tests use Kafka's own console tools.
  kafka_fetch
  if port_open "$KAFKA_HOST" "$KAFKA_PORT"; then say "kafka      already up at $KAFKA_HOST:$KAFKA_PORT"; return; fi
  mkdir -p "$STATE/kafka/logs" "$STATE/kafka/data"
  local props=$STATE/kafka/server.properties
  sed -e "s|@HOST@|$KAFKA_HOST|g" -e "s|@PORT@|$KAFKA_PORT|g" -e "s|@CONTROLLER_PORT@|$RAGSTREAM_KAFKA_CONTROLLER_PORT|g" \
    -e "s|@DATA@|$STATE/kafka/data|g" "$ROOT/stack/kafka/server.properties.tmpl" >"$props"
  if [ ! -f "$STATE/kafka/data/meta.properties" ]; then
    say "formatting KRaft storage in $STATE/kafka/data"
    kafka_java kafka.tools.StorageTool format -t "$(kafka_java kafka.tools.StorageTool random-uuid)" -c "$props" \
      >"$STATE/kafka/logs/format.log" 2>&1 || die "formatting Kafka storage failed; see $STATE/kafka/logs/format.log"
  fi
  : >"$STATE/kafka/logs/server.log"
  nohup java -Xms256m -Xmx1g -XX:+UseG1GC -Dlog4j2.configurationFile="$ROOT/stack/kafka/log4j2.properties" \
    -Dkafka.logs.dir="$STATE/kafka/logs" -cp "$kafka_lib/*" kafka.Kafka "$props" \
    >"$STATE/kafka/logs/stdout.log" 2>&1 &
  echo $! >"$STATE/kafka.pid"
  wait_for kafka 90 kafka_ready || die "Kafka did not start within 90 s; see $STATE/kafka/logs/server.log"
  say "kafka      started at $KAFKA_HOST:$KAFKA_PORT (KRaft, $RAGSTREAM_KAFKA_VERSION); logs: $STATE/kafka/logs/server.log"
}

# ---------------------------------------------------------------- Schema registry
reg_dir=$STATE/registry/apicurio-$RAGSTREAM_APICURIO_VERSION
reg_ready() { curl -fsS "http://$REG_HOST:$REG_PORT/health/ready" 2>/dev/null | grep -q '"UP"'; }

registry_fetch() {
  [ -f "$reg_dir/.complete" ] && return 0
  say "fetching Apicurio Registry $RAGSTREAM_APICURIO_VERSION from Maven Central"
  mkdir -p "$STATE/registry"
  mvn -q -B dependency:copy -Dartifact="io.apicurio:apicurio-registry-app:$RAGSTREAM_APICURIO_VERSION:zip:all" \
    -DoutputDirectory="$STATE/registry" >"$STATE/registry-fetch.log" 2>&1 \
    || die "mvn could not fetch Apicurio Registry; see $STATE/registry-fetch.log"
  rm -rf "$reg_dir"; mkdir -p "$reg_dir"
  (cd "$reg_dir" && unzip -q "$STATE/registry/apicurio-registry-app-$RAGSTREAM_APICURIO_VERSION-all.zip")
  touch "$reg_dir/.complete"
}

registry_up() {
  if reg_ready; then say "registry   already up at http://$REG_HOST:$REG_PORT"; return; fi
  port_open "$REG_HOST" "$REG_PORT" && die "port $REG_PORT is taken by something that is not a healthy registry"
  registry_fetch
  mkdir -p "$STATE/registry/logs"
  local jar; jar=$(ls "$reg_dir"/*-runner.jar "$reg_dir"/quarkus-app/quarkus-run.jar 2>/dev/null | head -n1 || true)
  [ -n "$jar" ] || die "no runnable jar in $reg_dir"
  # In-memory (H2) storage: schemas are re-registered by whoever needs them.
  nohup java -Xms128m -Xmx512m -Dquarkus.http.host="$REG_HOST" -Dquarkus.http.port="$REG_PORT" \
    -Dapicurio.storage.kind=sql -Dapicurio.storage.sql.kind=h2 -Dquarkus.log.level=WARN \
    -jar "$jar" >"$STATE/registry/logs/registry.log" 2>&1 &
  echo $! >"$STATE/registry.pid"
  wait_for registry 120 reg_ready || die "the schema registry did not become ready within 120 s; see $STATE/registry/logs/registry.log"
  say "registry   started at $RAGSTREAM_SCHEMA_REGISTRY_URL (Apicurio $RAGSTREAM_APICURIO_VERSION, in-memory); logs: $STATE/registry/logs/registry.log"
}

# ---------------------------------------------------------------- Redis
redis_ready() { redis-cli -h "$1" -p "$2" ping 2>/dev/null | grep -q PONG; }

redis_up() {
  if redis_ready "$REDIS_HOST" "$REDIS_PORT"; then say "redis      already up at $REDIS_HOST:$REDIS_PORT"; return; fi
  command -v redis-server >/dev/null || die "redis-server is not installed (apt-get install redis-server)"
  mkdir -p "$STATE/redis"
  redis-server --daemonize yes --bind "$REDIS_HOST" --port "$REDIS_PORT" --save '' --appendonly no \
    --dir "$STATE/redis" --pidfile "$STATE/redis.pid" --logfile "$STATE/redis/redis.log"
  wait_for redis 20 redis_ready "$REDIS_HOST" "$REDIS_PORT" || die "redis did not start; see $STATE/redis/redis.log"
  say "redis      started at $REDIS_HOST:$REDIS_PORT; logs: $STATE/redis/redis.log"
}

cluster_ok() { redis-cli -h "$(host_of "${CLUSTER_NODES[0]}")" -p "$(port_of "${CLUSTER_NODES[0]}")" cluster info 2>/dev/null | grep -q 'cluster_state:ok'; }

redis_cluster_up() {
  if cluster_ok; then say "redis-cluster already up at $RAGSTREAM_REDIS_CLUSTER_NODES"; return; fi
  local node h p dir started=0
  for node in "${CLUSTER_NODES[@]}"; do
    h=$(host_of "$node"); p=$(port_of "$node"); dir=$STATE/redis-cluster/$p
    redis_ready "$h" "$p" && continue
    mkdir -p "$dir"; rm -f "$dir/nodes.conf"
    redis-server --daemonize yes --bind "$h" --port "$p" --cluster-enabled yes --cluster-config-file "$dir/nodes.conf" \
      --cluster-node-timeout 2000 --save '' --appendonly no --dir "$dir" --pidfile "$STATE/redis-cluster-$p.pid" \
      --logfile "$dir/redis.log"
    wait_for redis 20 redis_ready "$h" "$p" || die "redis cluster node $node did not start; see $dir/redis.log"
    started=1
  done
  redis-cli --cluster create "${CLUSTER_NODES[@]}" --cluster-replicas 0 --cluster-yes >"$STATE/redis-cluster-create.log" 2>&1 \
    || die "creating the Redis Cluster failed; see $STATE/redis-cluster-create.log"
  wait_for redis-cluster 30 cluster_ok || die "the Redis Cluster did not reach cluster_state:ok"
  [ $started = 1 ] && say "redis-cluster started at $RAGSTREAM_REDIS_CLUSTER_NODES; logs: $STATE/redis-cluster/*/redis.log"
}

# ---------------------------------------------------------------- PostgreSQL + pgvector
pg_ready() { pg_isready -q -h "$PG_HOST" -p "$PG_PORT"; }
psqlc() { PGOPTIONS='-c client_min_messages=warning' psql -XAtq -h "$PG_HOST" -p "$PG_PORT" -U "$PG_USER" "$@"; }

postgres_up() {
  if ! pg_ready; then
    say "postgres   not answering at $PG_HOST:$PG_PORT; starting the machine's cluster"
    local ver; ver=$(ls /etc/postgresql 2>/dev/null | sort -n | tail -n1)
    [ -n "$ver" ] || die "no PostgreSQL installed (apt-get install postgresql)"
    pg_ctlcluster --skip-systemctl-redirect "$ver" main start || die "could not start PostgreSQL $ver"
    wait_for postgres 30 pg_ready || die "PostgreSQL did not become ready"
  fi
  PGHOST=$PG_HOST PGPORT=$PG_PORT PGUSER=$PG_USER bash "$ROOT/scripts/install-pgvector.sh"
  if [ "$(psqlc -d postgres -c "SELECT 1 FROM pg_database WHERE datname = '$PG_DB'")" != 1 ]; then
    psqlc -d postgres -c "CREATE DATABASE \"$PG_DB\"" >/dev/null
    say "postgres   created database $PG_DB"
  fi
  psqlc -d "$PG_DB" -c 'CREATE EXTENSION IF NOT EXISTS vector' >/dev/null
  say "postgres   up at $PG_HOST:$PG_PORT, database $PG_DB, pgvector $(psqlc -d "$PG_DB" -c "SELECT extversion FROM pg_extension WHERE extname = 'vector'")"
}

# ---------------------------------------------------------------- CDC source: PostgreSQL, wal_level=logical
src_ready() { pg_isready -q -h "$SRC_HOST" -p "$SRC_PORT"; }
src_psql() { PGOPTIONS='-c client_min_messages=warning' psql -XAtq -h "$SRC_HOST" -p "$SRC_PORT" -U "$SRC_USER" "$@"; }
pg_version() { ls /etc/postgresql 2>/dev/null | sort -n | tail -n1; }

source_pg_up() {
  if ! src_ready; then
    local ver; ver=$(pg_version)
    [ -n "$ver" ] || die "no PostgreSQL installed (apt-get install postgresql)"
    if [ ! -d "/etc/postgresql/$ver/$SRC_CLUSTER" ]; then
      say "source-pg  creating PostgreSQL $ver cluster $SRC_CLUSTER on port $SRC_PORT (wal_level=logical)"
      pg_createcluster "$ver" "$SRC_CLUSTER" -p "$SRC_PORT" -- --auth=trust >"$STATE/source-pg-create.log" 2>&1 \
        || die "pg_createcluster failed; see $STATE/source-pg-create.log"
      # A local test source: logical decoding on; durability traded for speed (it holds nothing of value).
      mkdir -p "/etc/postgresql/$ver/$SRC_CLUSTER/conf.d"
      cat >"/etc/postgresql/$ver/$SRC_CLUSTER/conf.d/ragstream.conf" <<CONF
listen_addresses = '$SRC_HOST'
wal_level = logical
max_replication_slots = 20
max_wal_senders = 20
shared_buffers = 64MB
fsync = off
synchronous_commit = off
full_page_writes = off
CONF
    fi
    pg_ctlcluster --skip-systemctl-redirect "$ver" "$SRC_CLUSTER" start >"$STATE/source-pg-start.log" 2>&1 \
      || die "could not start the source cluster $ver/$SRC_CLUSTER; see $STATE/source-pg-start.log and /var/log/postgresql/"
    wait_for source-pg 30 src_ready || die "the source PostgreSQL did not become ready at $SRC_HOST:$SRC_PORT"
  fi
  [ "$(src_psql -d postgres -c 'SHOW wal_level')" = logical ] \
    || die "PostgreSQL at $SRC_HOST:$SRC_PORT has wal_level=$(src_psql -d postgres -c 'SHOW wal_level'); Debezium needs logical"
  if [ "$(src_psql -d postgres -c "SELECT 1 FROM pg_database WHERE datname = '$SRC_DB'")" != 1 ]; then
    src_psql -d postgres -c "CREATE DATABASE \"$SRC_DB\"" >/dev/null
    say "source-pg  created database $SRC_DB"
  fi
  say "source-pg  up at $SRC_HOST:$SRC_PORT, database $SRC_DB (wal_level=logical)"
}

# ---------------------------------------------------------------- Kafka Connect + Debezium
connect_dir=$STATE/connect
connect_pom=$ROOT/stack/connect/pom.xml
connect_lib=$connect_dir/lib-$RAGSTREAM_KAFKA_VERSION
connect_plugins=$connect_dir/plugins
connect_ready() { curl -fsS "$RAGSTREAM_CONNECT_URL/connector-plugins" 2>/dev/null | grep -q PostgresConnector; }

# connect_fetch_one PROFILE DIR [EXCLUDED_GROUPS] — one profile of stack/connect/pom.xml into DIR, once per pom content.
connect_fetch_one() {
  local profile=$1 dir=$2 exclude=${3:-} sum
  sum=$(sha1sum "$connect_pom" | cut -c1-40)
  [ "$(cat "$dir/.complete" 2>/dev/null)" = "$sum" ] && return 0
  say "fetching Kafka Connect $profile jars from Maven Central"
  rm -rf "$dir"
  mvn -q -B -f "$connect_pom" dependency:copy-dependencies -P "$profile" -Dkafka.version="$RAGSTREAM_KAFKA_VERSION" \
    -DincludeScope=runtime ${exclude:+-DexcludeGroupIds="$exclude"} -DoutputDirectory="$dir" \
    >"$STATE/connect-fetch-$profile.log" 2>&1 || die "mvn could not fetch the $profile jars; see $STATE/connect-fetch-$profile.log"
  echo "$sum" >"$dir/.complete"
}

connect_fetch() {
  connect_fetch_one runtime "$connect_lib"
  # The worker provides the Connect API and the clients: plugins leave org.apache.kafka out.
  connect_fetch_one debezium "$connect_plugins/debezium-postgres" org.apache.kafka
  connect_fetch_one apicurio "$connect_plugins/apicurio-converter" org.apache.kafka
  # Apicurio's converter jars have no ServiceLoader manifest: one jar of ours adds it, so the worker
  # finds every plugin with plugin.discovery=service_load instead of scanning every class (~25 s).
  local services=$connect_plugins/apicurio-converter/ragstream-service-manifest.jar
  if [ ! -f "$services" ]; then
    local tmp; tmp=$(mktemp -d)
    mkdir -p "$tmp/META-INF/services"
    printf '%s\n' io.apicurio.registry.utils.converter.AvroConverter io.apicurio.registry.utils.converter.ExtJsonConverter \
      io.apicurio.registry.utils.converter.SerdeBasedConverter >"$tmp/META-INF/services/org.apache.kafka.connect.storage.Converter"
    (cd "$tmp" && jar cf "$services" META-INF) || die "could not write $services (the JDK's jar tool is needed)"
    rm -rf "$tmp"
  fi
}

connect_up() {
  # The jars are fetched even when a worker already runs: test/cdc starts workers of its own from them.
  connect_fetch
  if connect_ready; then say "connect    already up at $RAGSTREAM_CONNECT_URL"; return; fi
  port_open "$CONNECT_HOST" "$CONNECT_PORT" && die "port $CONNECT_PORT is taken by something that is not Kafka Connect with Debezium"
  mkdir -p "$connect_dir/logs"
  sed -e "s|@BROKERS@|$RAGSTREAM_KAFKA_BROKERS|g" -e "s|@GROUP@|ragstream-connect|g" -e "s|@HOST@|$CONNECT_HOST|g" \
    -e "s|@PORT@|$CONNECT_PORT|g" -e "s|@PLUGINS@|$connect_plugins|g" "$ROOT/stack/connect/worker.properties.tmpl" \
    >"$connect_dir/worker.properties"
  : >"$connect_dir/logs/connect.log"
  nohup java -Xms128m -Xmx768m -XX:+UseG1GC -Dlog4j2.configurationFile="$ROOT/stack/connect/log4j2.properties" \
    -Dkafka.logs.dir="$connect_dir/logs" -cp "$connect_lib/*" org.apache.kafka.connect.cli.ConnectDistributed \
    "$connect_dir/worker.properties" >"$connect_dir/logs/stdout.log" 2>&1 &
  echo $! >"$STATE/connect.pid"
  wait_for connect 120 connect_ready || die "Kafka Connect did not become ready within 120 s; see $connect_dir/logs/connect.log"
  say "connect    started at $RAGSTREAM_CONNECT_URL (Kafka Connect $RAGSTREAM_KAFKA_VERSION + Debezium PostgreSQL); logs: $connect_dir/logs/connect.log"
}

# ---------------------------------------------------------------- commands
stop_pidfile() {
  local name=$1 file=$2 pid
  pid_alive "$file" || { rm -f "$file"; return 0; }
  pid=$(cat "$file")
  kill "$pid" 2>/dev/null || true
  local deadline=$((SECONDS + 30))
  while kill -0 "$pid" 2>/dev/null; do
    [ $SECONDS -lt $deadline ] || { kill -9 "$pid" 2>/dev/null || true; break; }
    sleep 0.3
  done
  rm -f "$file"
  say "$name stopped (pid $pid)"
}

status_line() { printf '%-14s %-5s %s\n' "$1" "$2" "$3"; }

cmd_status() {
  local s
  s=down; kafka_ready || port_open "$KAFKA_HOST" "$KAFKA_PORT" && s=up; status_line kafka "$s" "$RAGSTREAM_KAFKA_BROKERS"
  s=down; reg_ready && s=up; status_line schema-registry "$s" "$RAGSTREAM_SCHEMA_REGISTRY_URL"
  s=down; redis_ready "$REDIS_HOST" "$REDIS_PORT" && s=up; status_line redis "$s" "$RAGSTREAM_REDIS_URL"
  s=down; cluster_ok && s=up; status_line redis-cluster "$s" "$RAGSTREAM_REDIS_CLUSTER_NODES"
  s=down; pg_ready && psqlc -d "$PG_DB" -c "SELECT 1 FROM pg_extension WHERE extname = 'vector'" 2>/dev/null | grep -q 1 && s=up
  status_line postgres "$s" "$PG_HOST:$PG_PORT/$PG_DB (pgvector)"
  s=down; src_ready && s=up; status_line source-pg "$s" "$SRC_HOST:$SRC_PORT/$SRC_DB (wal_level=logical)"
  s=down; connect_ready && s=up; status_line connect "$s" "$RAGSTREAM_CONNECT_URL (Debezium)"
}

case "${1:-}" in
  up)
    postgres_up
    redis_up
    redis_cluster_up
    kafka_up
    registry_up
    source_pg_up
    connect_up
    say "stack is up; state in $STATE"
    ;;
  down)
    stop_pidfile connect "$STATE/connect.pid"
    stop_pidfile registry "$STATE/registry.pid"
    stop_pidfile kafka "$STATE/kafka.pid"
    for f in "$STATE"/redis-cluster-*.pid; do [ -e "$f" ] && stop_pidfile "redis-cluster node" "$f"; done
    stop_pidfile redis "$STATE/redis.pid"
    if src_ready && [ -d "/etc/postgresql/$(pg_version)/$SRC_CLUSTER" ]; then
      pg_ctlcluster --skip-systemctl-redirect "$(pg_version)" "$SRC_CLUSTER" stop && say "source-pg stopped ($SRC_CLUSTER)"
    fi
    ;;
  status) cmd_status ;;
  -h|--help|help|"")
    sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'
    [ -n "${1:-}" ] || exit 2
    ;;
  *) die "unknown command '$1' (expected up, down or status)" ;;
esac
