#!/usr/bin/env bash
# A throwaway PostgreSQL server for tests and benchmarks, on loopback, in a folder of its own.
#
#   scripts/postgres.sh start <dir> [port]   initdb (first time) + start; prints the connection URL
#   scripts/postgres.sh stop <dir>           fast shutdown; the folder stays (delete it to start over)
#
# Debian's PostgreSQL 15 (package postgresql). As root, the server runs as the `postgres` user
# (initdb refuses root); the folder is handed to that user. fsync is off: test data only.
set -euo pipefail

command_name=${1:-}
dir=${2:-}
[[ -n $command_name && -n $dir ]] || { echo "usage: $0 start|stop <dir> [port]" >&2; exit 2; }

bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)
[[ -n $bindir && -x $bindir/pg_ctl ]] || { echo "postgres.sh: PostgreSQL server binaries not found (apt-get install postgresql)" >&2; exit 3; }
data=$dir/data

as_owner() {
  if [[ $(id -u) -eq 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi
}

case $command_name in
  start)
    port=${3:-0}
    if [[ $port == 0 ]]; then
      # A free loopback port, chosen by the kernel.
      port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')
    fi
    mkdir -p "$dir"
    [[ $(id -u) -eq 0 ]] && chown postgres: "$dir"
    if [[ ! -f $data/PG_VERSION ]]; then
      as_owner "$bindir/initdb" -D "$data" --auth=trust --username=postgres --encoding=UTF8 --no-locale >"$dir/initdb.log" 2>&1 \
        || { cat "$dir/initdb.log" >&2; exit 1; }
    fi
    # Sockets in the folder (not /var/run/postgresql, which may be missing or someone else's).
    as_owner "$bindir/pg_ctl" -D "$data" -l "$dir/server.log" -w -t 30 \
      -o "-c listen_addresses=127.0.0.1 -p $port -k $dir -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200" \
      start >/dev/null || { tail -20 "$dir/server.log" >&2; exit 1; }
    echo "$port" >"$dir/port"
    echo "postgres://postgres@127.0.0.1:$port/postgres"
    ;;
  stop)
    [[ -f $data/postmaster.pid ]] || exit 0
    as_owner "$bindir/pg_ctl" -D "$data" -m fast -w -t 30 stop >/dev/null
    ;;
  *)
    echo "usage: $0 start|stop <dir> [port]" >&2
    exit 2
    ;;
esac
