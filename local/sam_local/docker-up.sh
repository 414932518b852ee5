#!/bin/sh
# Docker for `make sam-local` and `make test`: nothing to do where a daemon answers (Docker Desktop,
# a running dockerd). Otherwise, on Debian as root (this machine, CI): install docker.io and
# debootstrap when missing, and start dockerd in the background.
set -e
if ! command -v debootstrap >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  apt-get update && apt-get install -y --no-install-recommends debootstrap
fi
docker info >/dev/null 2>&1 && exit 0
if ! command -v dockerd >/dev/null 2>&1; then
  if ! command -v apt-get >/dev/null 2>&1 || [ "$(id -u)" != 0 ]; then
    echo "sam-local: no Docker daemon answers; start Docker (Docker Desktop on a laptop) and retry" >&2
    exit 1
  fi
  apt-get update && apt-get install -y --no-install-recommends docker.io
fi
docker info >/dev/null 2>&1 && exit 0
echo "sam-local: starting dockerd (log: /tmp/klineo-dockerd.log)"
nohup dockerd >/tmp/klineo-dockerd.log 2>&1 &
tries=0
until docker info >/dev/null 2>&1; do
  tries=$((tries + 1))
  if [ "$tries" -gt 120 ]; then echo "sam-local: dockerd did not start (see /tmp/klineo-dockerd.log)" >&2; exit 1; fi
  sleep 0.5
done
