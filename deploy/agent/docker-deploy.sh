#!/bin/sh
# A registry-agent deploy command for a service run as one Docker container (docs/agent.md,
# "The whole pipeline"): pulls the release the event names, starts it beside the running one,
# waits for its HEALTHCHECK, and only then replaces the old container. A release that exits or
# turns unhealthy is removed, the old container keeps running, and the script exits 3: the agent
# reports the deploy as failed, with this output, on the registry's delivery record.
#
#   targets:
#     - name: svc
#       repositories: [team/svc]
#       tags: [semver:stable]
#       command: /etc/registry-agent/docker-deploy.sh
#       env: { SERVICE_NAME: svc, DOCKER_RUN_OPTIONS: "--network=svc-net" }
#
# From the agent: IMAGE_REF (host/repo:tag@sha256:…, so the exact pushed digest runs) and
# REGISTRY_EVENT_ID. From the target's env:
#   SERVICE_NAME            the container's name (required)
#   DOCKER_RUN_OPTIONS      more `docker run` options, split on spaces (from the config, never the event)
#   HEALTH_TIMEOUT_SECONDS  how long the new container may take to become healthy (default 60)
# and what docker itself reads (DOCKER_HOST, DOCKER_CONFIG holding a pull account's `docker login`).
#
# The new container runs beside the old one until it is healthy, so it cannot publish the same
# host port (-p); put the service behind a proxy on a Docker network instead.
set -eu

name=${SERVICE_NAME:?set SERVICE_NAME to the container name}
image=${IMAGE_REF:?IMAGE_REF comes from registry-agent}
health_timeout=${HEALTH_TIMEOUT_SECONDS:-60}
next="$name-next"
EXIT_UNHEALTHY=3

docker pull "$image"
docker rm -f "$next" >/dev/null 2>&1 || true
# shellcheck disable=SC2086 # DOCKER_RUN_OPTIONS is a list of options
docker run -d --name "$next" --label "dev.harbormaster.deploy.event-id=${REGISTRY_EVENT_ID:-}" ${DOCKER_RUN_OPTIONS:-} "$image" >/dev/null

# The why comes last: the registry's delivery record shows the end of the output.
give_up() {
  docker logs --tail 20 "$next" >&2 || true
  docker inspect --format '{{if .State.Health}}{{range .State.Health.Log}}probe exit {{.ExitCode}}: {{.Output}}{{end}}{{end}}' "$next" >&2 || true
  docker rm -f "$next" >/dev/null 2>&1 || true
  echo "$name: $image $1; keeping the running release" >&2
  exit "$EXIT_UNHEALTHY"
}

deadline=$(($(date +%s) + health_timeout))
while :; do
  state=$(docker inspect --format '{{.State.Status}} {{if .State.Health}}{{.State.Health.Status}}{{else}}none{{end}}' "$next")
  case $state in
    "running healthy" | "running none") break ;; # no HEALTHCHECK: running is all we can know
    "running unhealthy") give_up "is unhealthy" ;;
    running*) ;;
    *) give_up "stopped (${state% *})" ;;
  esac
  [ "$(date +%s)" -lt "$deadline" ] || give_up "is not healthy after ${health_timeout}s"
  sleep 1
done

docker rm -f "$name" >/dev/null 2>&1 || true
docker rename "$next" "$name"
echo "$name: running $image"
