#!/usr/bin/env bash
# nginx as the load balancer in front of registry replicas, for tests: Debian's /usr/sbin/nginx
# with every file it writes (pid, logs, temp folders) under DIR, listening on one loopback port,
# round robin over the replicas. The proxy settings are those of deploy/nginx/registry.conf
# (the operators' example, which explains each one); keep the two in step.
#
#   scripts/nginx.sh config DIR PORT HOST:PORT...   writes DIR/nginx.conf and checks it (nginx -t)
#   scripts/nginx.sh run DIR PORT HOST:PORT...      the same, then runs nginx in the foreground
#                                                   (exec: the caller's child is nginx's master)
#   scripts/nginx.sh stop DIR                       graceful stop of a running master (SIGQUIT)
#
# As root the workers run as nobody, so DIR is made traversable (0755); nginx creates the temp
# folders and hands them to the workers itself.
set -euo pipefail

usage() { echo "usage: $0 config|run DIR PORT HOST:PORT... | stop DIR" >&2; exit 2; }
[[ $# -ge 2 ]] || usage
command_name=$1
dir=$2
nginx=${NGINX:-/usr/sbin/nginx}

write_config() {
  local port=$1
  shift
  [[ $port =~ ^[0-9]+$ ]] || { echo "nginx.sh: port must be a number, not '$port'" >&2; exit 2; }
  [[ $# -ge 1 ]] || { echo "nginx.sh: at least one upstream HOST:PORT" >&2; exit 2; }
  [[ -x $nginx ]] || { echo "nginx.sh: $nginx not found (apt-get install nginx)" >&2; exit 3; }
  mkdir -p "$dir"
  chmod 0755 "$dir"
  local servers='' upstream address='^[][0-9a-zA-Z.:-]+:[0-9]+$'
  for upstream in "$@"; do
    [[ $upstream =~ $address ]] || { echo "nginx.sh: upstream must be HOST:PORT, not '$upstream'" >&2; exit 2; }
    # A replica that refuses a connection sits out 2 s; then nginx tries it again.
    servers+="    server $upstream max_fails=1 fail_timeout=2s;"$'\n'
  done
  cat >"$dir/nginx.conf" <<EOF
# Written by scripts/nginx.sh; see deploy/nginx/registry.conf for what each setting is for.
worker_processes 1;
pid $dir/nginx.pid;
error_log $dir/error.log info;
events { worker_connections 1024; }

http {
  client_body_temp_path $dir/client_body;
  proxy_temp_path $dir/proxy;
  fastcgi_temp_path $dir/fastcgi;
  uwsgi_temp_path $dir/uwsgi;
  scgi_temp_path $dir/scgi;
  log_format upstreams '\$remote_addr "\$request" \$status upstream=\$upstream_addr upstream_status=\$upstream_status \$request_time';
  access_log $dir/access.log upstreams;

  upstream registry {
$servers
    keepalive 32;
    keepalive_timeout 60s;
  }

  server {
    listen 127.0.0.1:$port;
    client_max_body_size 0;
    client_body_timeout 60s;

    location / {
      proxy_pass http://registry;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host \$http_host;
      proxy_set_header X-Forwarded-Host \$http_host;
      proxy_set_header X-Forwarded-Proto \$scheme;
      proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
      proxy_request_buffering off;
      proxy_buffering off;
      proxy_connect_timeout 2s;
      proxy_send_timeout 900s;
      proxy_read_timeout 900s;
      proxy_next_upstream error timeout;
      proxy_next_upstream_tries 3;
      proxy_next_upstream_timeout 10s;
    }
  }
}
EOF
  "$nginx" -t -q -p "$dir" -e "$dir/error.log" -c "$dir/nginx.conf" || { tail -5 "$dir/error.log" >&2 || true; exit 1; }
}

case $command_name in
  config)
    [[ $# -ge 4 ]] || usage
    write_config "${@:3}"
    ;;
  run)
    [[ $# -ge 4 ]] || usage
    write_config "${@:3}"
    exec "$nginx" -p "$dir" -e "$dir/error.log" -c "$dir/nginx.conf" -g 'daemon off;'
    ;;
  stop)
    [[ -f $dir/nginx.pid ]] || exit 0
    kill -QUIT "$(cat "$dir/nginx.pid")" 2>/dev/null || true
    ;;
  *)
    usage
    ;;
esac
