#!/usr/bin/env bash
# A throwaway one-node Ceph cluster serving S3 on loopback, for tests and benchmarks:
# one monitor, one memstore OSD (data in memory), radosgw's beast frontend on 127.0.0.1,
# cephx off. Everything lives under DIR; `stop` ends the daemons and removes DIR.
#
#   scripts/radosgw.sh start DIR [PORT]   # prints endpoint=, access_key=, secret_key=, bucket-ready user
#   scripts/radosgw.sh stop DIR
#
# Needs Debian's radosgw, ceph-mon and ceph-osd. Starts in a few seconds: `paxos propose
# interval` is cut from 1 s (the default makes every map change wait). The messenger must be
# told `crc` mode on every side, or with cephx off the client loops on
# "get_initial_auth_request returned -13".
set -euo pipefail

usage() { echo "usage: $0 start DIR [PORT] | stop DIR" >&2; exit 2; }
[[ $# -ge 2 ]] || usage
command=$1
dir=$2

free_port() {
  # Below Linux's ephemeral range (32768 and up), where outgoing connections never hold a port
  # that a connect probe cannot see.
  local port
  for _ in $(seq 1 50); do
    port=$((10000 + RANDOM % 22000))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then echo "$port"; return; fi
  done
  echo "no free port found" >&2
  exit 1
}

stop_cluster() {
  # The data is throwaway: SIGKILL at once (a memstore OSD would otherwise write its whole
  # store to disk on the way out).
  local pidfile pid
  for pidfile in "$dir"/run/*.pid; do
    [[ -e $pidfile ]] || continue
    pid=$(cat "$pidfile" 2>/dev/null || true)
    [[ -n $pid ]] && kill -9 "$pid" 2>/dev/null || true
  done
}

case $command in
  stop)
    [[ -d $dir ]] || exit 0
    stop_cluster
    rm -rf "$dir"
    exit 0
    ;;
  start) ;;
  *) usage ;;
esac

for tool in ceph-mon ceph-osd radosgw radosgw-admin monmaptool ceph; do
  command -v "$tool" >/dev/null || { echo "$tool is missing: apt-get install -y radosgw ceph-mon ceph-osd" >&2; exit 3; }
done

rgw_port=${3:-$(free_port)}
mon_port=$(free_port)
mkdir -p "$dir"/{mon,osd,run,log}
dir=$(cd "$dir" && pwd)
fsid=$(uuidgen)
conf=$dir/ceph.conf
trap 'echo "radosgw did not start; logs in $dir/log" >&2; tail -n 20 "$dir"/log/*.log >&2 2>/dev/null || true; stop_cluster' ERR

cat >"$conf" <<CONF
[global]
fsid = $fsid
mon host = v2:127.0.0.1:$mon_port
mon initial members = a
public network = 127.0.0.0/8
auth cluster required = none
auth service required = none
auth client required = none
auth supported = none
ms mon client mode = crc
ms mon service mode = crc
ms mon cluster mode = crc
ms client mode = crc
ms service mode = crc
ms cluster mode = crc
run dir = $dir/run
pid file = $dir/run/\$name.pid
admin socket = $dir/run/\$name.asok
log file = $dir/log/\$name.log
keyring = $dir/keyring
paxos propose interval = 0.01
mon allow pool size one = true
mon allow pool delete = true
mon warn on pool no redundancy = false
mon max pg per osd = 1000
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
osd crush chooseleaf type = 0

[mon]
mon data = $dir/mon/\$cluster-\$id

[osd]
osd data = $dir/osd/\$cluster-\$id
osd objectstore = memstore
memstore device bytes = 8589934592
osd max object size = 1073741824

[client.rgw]
rgw frontends = beast endpoint=127.0.0.1:$rgw_port
rgw data = $dir/rgw
rgw dns name = 127.0.0.1
rgw enable usage log = false
CONF

monmaptool --create --fsid "$fsid" --addv a "[v2:127.0.0.1:$mon_port]" "$dir/monmap" >/dev/null
ceph-mon -c "$conf" --mkfs -i a --monmap "$dir/monmap" >"$dir/log/mkfs-mon.log" 2>&1
ceph-mon -c "$conf" -i a >>"$dir/log/daemons.log" 2>&1

ceph_() { timeout 30 ceph -c "$conf" "$@"; }
osd_id=$(ceph_ osd create 2>>"$dir/log/daemons.log")
mkdir -p "$dir/osd/ceph-$osd_id"
ceph-osd -c "$conf" -i "$osd_id" --mkfs >"$dir/log/mkfs-osd.log" 2>&1
ceph-osd -c "$conf" -i "$osd_id" >>"$dir/log/daemons.log" 2>&1

mkdir -p "$dir/rgw"
radosgw -c "$conf" -n client.rgw >>"$dir/log/daemons.log" 2>&1

# Ready when S3 answers (radosgw creates its pools first, which needs the OSD up).
for _ in $(seq 1 300); do
  if curl -s -o /dev/null "http://127.0.0.1:$rgw_port/"; then break; fi
  sleep 0.1
done
curl -s -o /dev/null "http://127.0.0.1:$rgw_port/"

access_key=registry-test
secret_key=$(head -c 24 /dev/urandom | base64 | tr -d '/+=' | head -c 32)
timeout 30 radosgw-admin -c "$conf" -n client.rgw user create --uid=registry --display-name=registry \
  --access-key="$access_key" --secret-key="$secret_key" >"$dir/log/user.log" 2>&1
trap - ERR

echo "endpoint=http://127.0.0.1:$rgw_port"
echo "access_key=$access_key"
echo "secret_key=$secret_key"
echo "dir=$dir"
