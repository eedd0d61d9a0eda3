#!/usr/bin/env bash
# A throwaway Docker engine for tests: dockerd and a containerd of its own, everything under DIR.
#
#   scripts/dockerd.sh start DIR    starts it (or finds it running) and prints its address,
#                                   unix://DIR/docker.sock; pass it as DOCKER_HOST
#   scripts/dockerd.sh status DIR   prints the address and exits 0 when the engine answers, else 1
#   scripts/dockerd.sh stop DIR     removes its containers, stops it, kills what it left behind,
#                                   unmounts what it mounted under DIR and deletes its files
#
# Several engines run side by side: each has its own data and exec roots, socket, pid files
# and containerd (never the machine's /run/containerd, which dockerd would otherwise join),
# and none touches the host's network (no bridge, no iptables, no ip_forward).
# Containers run with --network=none or --network=host; 127.0.0.0/8 registries are trusted
# over plain HTTP, as dockerd always does.
#
# Environment:
#   DOCKERD_STORAGE_DRIVER  overlay2 or vfs; default overlay2, and vfs where DIR's filesystem
#                           cannot hold overlay2 (vfs copies every layer in full: a build of the
#                           project's image took 18 min on it here, against 3 min on overlay2)
#   DOCKERD_DATA_TMPFS      size of a tmpfs for the data root (images, containers), default 8g;
#                           0 keeps it on DIR's disk. A tmpfs takes only what is stored in it and
#                           goes in one umount, where deleting a few hundred MB of layers from
#                           this machine's disk (ext4, online discard) took 20-40 s; builds skip
#                           the disk's syncs too
#   DOCKERD_START_TIMEOUT   seconds to wait for each daemon to answer (default 30)
set -euo pipefail

usage() {
  echo "usage: $0 start|status|stop DIR" >&2
  exit 2
}
(($# == 2)) || usage
command=$1
dir=$2
[[ $dir == /* ]] || dir="$(pwd)/$dir"
dir=${dir%/}

sock="$dir/docker.sock"
address="unix://$sock"
containerd_dir="$dir/containerd"
containerd_sock="$containerd_dir/containerd.sock"
start_timeout=${DOCKERD_START_TIMEOUT:-30}

log() { echo "dockerd.sh: $*" >&2; }

# pid from a pid file, if that process is alive.
live_pid() {
  local pid
  [[ -s $1 ]] || return 1
  pid=$(<"$1")
  [[ $pid =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null && echo "$pid"
}

answers() {
  timeout 10 docker --host "$address" version --format '{{.Server.Version}}' >/dev/null 2>&1
}

# Waits (bounded) until `check` succeeds; fails early when process `pid` has exited.
wait_for() {
  local what=$1 pid=$2 check=$3 deadline=$((SECONDS + start_timeout))
  until $check; do
    if ! kill -0 "$pid" 2>/dev/null; then
      log "$what exited while starting"
      return 1
    fi
    if ((SECONDS >= deadline)); then
      log "$what did not answer within ${start_timeout}s"
      return 1
    fi
    sleep 0.1
  done
}

# Sends SIGTERM, waits up to $2 seconds, then SIGKILLs.
end_process() {
  local pid=$1 grace=$2 deadline
  kill -TERM "$pid" 2>/dev/null || return 0
  deadline=$((SECONDS + grace))
  while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.1; done
  if kill -0 "$pid" 2>/dev/null; then
    log "pid $pid still running after ${grace}s: SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
  fi
}

containerd_up() { [[ -S $containerd_sock ]]; }

write_containerd_config() {
  mkdir -p "$containerd_dir"
  cat >"$containerd_dir/config.toml" <<EOF
version = 2
root = "$containerd_dir/root"
state = "$containerd_dir/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$containerd_sock"
[debug]
  address = ""
[metrics]
  address = ""
[plugins."io.containerd.internal.v1.opt"]
  path = "$containerd_dir/opt"
EOF
}

start_containerd() {
  write_containerd_config
  setsid containerd --config "$containerd_dir/config.toml" </dev/null >"$containerd_dir/containerd.log" 2>&1 &
  echo $! >"$containerd_dir/containerd.pid"
  if ! wait_for containerd $! containerd_up; then
    tail -n 20 "$containerd_dir/containerd.log" >&2
    return 1
  fi
}

start_dockerd() {
  local driver=$1 pid
  echo '{}' >"$dir/daemon.json"   # never the machine's /etc/docker/daemon.json
  setsid dockerd \
    --config-file "$dir/daemon.json" \
    --data-root "$dir/data" \
    --exec-root "$dir/exec" \
    --pidfile "$dir/docker.pid" \
    --host "$address" \
    --containerd "$containerd_sock" \
    --storage-driver "$driver" \
    --bridge=none --iptables=false --ip-forward=false --ip-masq=false \
    --shutdown-timeout 5 \
    </dev/null >"$dir/dockerd.log" 2>&1 &
  pid=$!
  echo "$pid" >"$dir/dockerd.launch.pid"
  wait_for "dockerd ($driver)" "$pid" answers
}

mount_data_tmpfs() {
  local size=${DOCKERD_DATA_TMPFS:-8g}
  mkdir -p "$dir/data"
  [[ $size != 0 ]] || return 0
  mount -t tmpfs -o "size=$size,mode=0711" tmpfs "$dir/data" ||
    log "could not mount a tmpfs on $dir/data: the data root stays on disk"
}

start() {
  if live_pid "$dir/docker.pid" >/dev/null && answers; then
    echo "$address"
    return
  fi
  stop quietly   # a previous engine under DIR that died half-way
  mkdir -p "$dir"
  # Unix socket paths are limited to 107 bytes; containerd adds ".ttrpc" to its own.
  if ((${#containerd_sock} + 6 > 107)); then
    log "DIR is too long for unix sockets: use a shorter path than $dir"
    exit 1
  fi
  for tool in dockerd containerd containerd-shim-runc-v2 runc docker; do
    command -v "$tool" >/dev/null || { log "$tool is not installed (Debian: apt-get install docker.io)"; exit 1; }
  done
  mount_data_tmpfs
  start_containerd || { stop quietly; exit 1; }
  local driver=${DOCKERD_STORAGE_DRIVER:-overlay2}
  if ! start_dockerd "$driver"; then
    if [[ -z ${DOCKERD_STORAGE_DRIVER:-} ]] && ! live_pid "$dir/dockerd.launch.pid" >/dev/null; then
      log "overlay2 is not available under $dir ($(grep -m1 -iE 'overlay|driver' "$dir/dockerd.log" || true)); using vfs"
      start_dockerd vfs || { tail -n 30 "$dir/dockerd.log" >&2; stop quietly; exit 1; }
    else
      tail -n 30 "$dir/dockerd.log" >&2
      stop quietly
      exit 1
    fi
  fi
  echo "$address"
}

status() {
  live_pid "$dir/docker.pid" >/dev/null && answers && echo "$address"
}

stop() {
  local quiet=${1:-} pid
  # Removing the containers first spares the shutdown their stop timeouts.
  if live_pid "$dir/docker.pid" >/dev/null && answers; then
    local ids
    ids=$(timeout 20 docker --host "$address" ps -aq 2>/dev/null || true)
    [[ -n $ids ]] && timeout 60 docker --host "$address" rm -f -v $ids >/dev/null 2>&1 || true
  fi
  for file in "$dir/docker.pid" "$dir/dockerd.launch.pid"; do
    pid=$(live_pid "$file") && end_process "$pid" 20
  done
  pid=$(live_pid "$containerd_dir/containerd.pid") && end_process "$pid" 10
  kill_leftovers
  unmount_all
  rm -rf "$dir/data" "$dir/exec" "$containerd_dir" "$sock" "$dir/docker.pid" "$dir/dockerd.launch.pid" \
    "$dir/daemon.json" "$dir/dockerd.log"
  rmdir "$dir" 2>/dev/null || true
  [[ -n $quiet ]] || log "stopped the engine under $dir"
}

# After a crash: the shims of this engine's containerd (found by the socket they name, which
# is unique to DIR) and the processes of its containers (by their cgroups, named after the
# container ids kept under DIR).
kill_leftovers() {
  local pid args id procs
  for pid in $(pgrep -f -- "-address $containerd_sock" || true); do
    args=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null || true)
    [[ $args == *"-address $containerd_sock "* || $args == *"-address $containerd_sock" ]] && kill -KILL "$pid" 2>/dev/null || true
  done
  [[ -d $dir/data/containers ]] || return 0
  for id in $(ls "$dir/data/containers"); do
    [[ $id =~ ^[0-9a-f]{64}$ ]] || continue
    while IFS= read -r procs; do
      xargs -r kill -KILL <"$procs" 2>/dev/null || true
    done < <(find /sys/fs/cgroup -path "*$id*" -name cgroup.procs 2>/dev/null)
  done
}

unmount_all() {
  local mountpoint
  # Deepest first; mountinfo's 5th field is the mount point (spaces escaped as \040).
  while IFS= read -r mountpoint; do
    umount "$mountpoint" 2>/dev/null || umount -l "$mountpoint" 2>/dev/null || log "could not unmount $mountpoint"
  done < <(awk -v prefix="$dir/" 'index($5, prefix) == 1 { print $5 }' /proc/self/mountinfo | sort -r)
}

case $command in
  start) start ;;
  status) status ;;
  stop) stop ;;
  *) usage ;;
esac
