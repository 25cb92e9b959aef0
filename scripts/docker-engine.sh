#!/usr/bin/env bash
# A Docker engine and registry of devslice's own, for the tests that need a real engine.
#
#   scripts/docker-engine.sh start   install if missing (Debian: docker.io, docker-registry,
#                                    busybox-static; needs root), start dockerd and the registry
#   scripts/docker-engine.sh env     print `export DOCKER_HOST=... DEVSLICE_TEST_REGISTRY=...`
#   scripts/docker-engine.sh stop    stop what `start` started (by PID), remove its bridge
#
#   eval "$(scripts/docker-engine.sh start)"   # then: make test
#
# dockerd runs with its own socket, pidfile, data and exec roots under $DEVSLICE_ENGINE_DIR
# (default /tmp/devslice-engine), leaves iptables and forwarding alone, and uses a bridge of its
# own whose published ports bind 127.0.0.1 only; it never touches a system engine. The registry
# is the docker-registry package's binary on an ephemeral 127.0.0.1 port. Idempotent: `start`
# on a running engine prints its env again; `stop` ends only the PIDs `start` recorded.
set -euo pipefail

DIR=${DEVSLICE_ENGINE_DIR:-${TMPDIR:-/tmp}/devslice-engine}
BRIDGE=${DEVSLICE_ENGINE_BRIDGE:-dsl0}
BRIDGE_ADDR=${DEVSLICE_ENGINE_BRIDGE_ADDR:-10.213.0.1/24}
SOCK=$DIR/docker.sock

log() { echo "docker-engine: $*" >&2; }

alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

install_missing() {
    local missing=()
    command -v dockerd >/dev/null || missing+=(docker.io)
    command -v docker-registry >/dev/null || missing+=(docker-registry)
    [ -x /bin/busybox ] || missing+=(busybox-static)
    [ ${#missing[@]} -eq 0 ] && return 0
    if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
        log "missing ${missing[*]}: install them (Debian/Ubuntu: apt-get install docker.io" \
            "docker-registry busybox-static) or point DOCKER_HOST at an engine of yours"
        exit 1
    fi
    log "installing ${missing[*]}"
    # policy-rc.d keeps apt from starting the packages' system services (exit 101: "denied").
    local policy=/usr/sbin/policy-rc.d made_policy=
    if [ ! -e $policy ]; then printf '#!/bin/sh\nexit 101\n' >$policy; chmod +x $policy; made_policy=1; fi
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        "${missing[@]}" >&2
    [ -n "$made_policy" ] && rm -f $policy
    return 0
}

registry_port() { sed -n 's/.*127\.0\.0\.1:\([0-9]*\).*/\1/p' "$DIR/registry.addr" 2>/dev/null; }

print_env() {
    echo "export DOCKER_HOST=unix://$SOCK"
    echo "export DEVSLICE_TEST_REGISTRY=127.0.0.1:$(registry_port)"
}

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

start() {
    install_missing
    mkdir -p "$DIR"
    if ! alive "$DIR/dockerd.started"; then
        if ! ip link show "$BRIDGE" >/dev/null 2>&1; then
            ip link add "$BRIDGE" type bridge
            ip addr add "$BRIDGE_ADDR" dev "$BRIDGE"
            touch "$DIR/bridge.ours"
        fi
        ip link set "$BRIDGE" up
        log "starting dockerd (logs: $DIR/dockerd.log)"
        setsid dockerd --host "unix://$SOCK" --pidfile "$DIR/dockerd.pid" \
            --data-root "$DIR/data" --exec-root "$DIR/exec" \
            --iptables=false --ip-masq=false --ip-forward=false --ip6tables=false \
            --exec-opt native.cgroupdriver=cgroupfs \
            --bridge="$BRIDGE" --ip=127.0.0.1 \
            >"$DIR/dockerd.log" 2>&1 </dev/null &
        echo $! >"$DIR/dockerd.started"
        for _ in $(seq 1 300); do
            DOCKER_HOST=unix://$SOCK docker version >/dev/null 2>&1 && break
            alive "$DIR/dockerd.started" || { tail -20 "$DIR/dockerd.log" >&2; exit 1; }
            sleep 0.1
        done
        DOCKER_HOST=unix://$SOCK docker version >/dev/null || { tail -20 "$DIR/dockerd.log" >&2; exit 1; }
    fi
    if ! alive "$DIR/registry.started"; then
        local port
        port=$(free_port)
        mkdir -p "$DIR/registry"
        cat >"$DIR/registry.yml" <<YAML
version: 0.1
log: {level: warn}
storage:
  filesystem: {rootdirectory: $DIR/registry}
  delete: {enabled: true}
http:
  addr: 127.0.0.1:$port
YAML
        echo "127.0.0.1:$port" >"$DIR/registry.addr"
        log "starting the registry on 127.0.0.1:$port"
        setsid docker-registry serve "$DIR/registry.yml" >"$DIR/registry.log" 2>&1 </dev/null &
        echo $! >"$DIR/registry.started"
        for _ in $(seq 1 100); do
            python3 - "$port" <<'PY' 2>/dev/null && break
import sys, urllib.request
urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/v2/", timeout=1)
PY
            alive "$DIR/registry.started" || { tail -20 "$DIR/registry.log" >&2; exit 1; }
            sleep 0.1
        done
    fi
    print_env
}

stop_pid() {  # name: stop the process start recorded, TERM then KILL after 15 s
    local pidfile=$DIR/$1.started
    if alive "$pidfile"; then
        local pid
        pid=$(cat "$pidfile")
        log "stopping $1 (pid $pid)"
        kill "$pid"
        for _ in $(seq 1 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
    fi
    rm -f "$pidfile"
}

stop() {
    [ -d "$DIR" ] || return 0
    stop_pid registry
    stop_pid dockerd
    if [ -f "$DIR/bridge.ours" ]; then
        ip link del "$BRIDGE" 2>/dev/null || true
        rm -f "$DIR/bridge.ours"
    fi
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    env) alive "$DIR/dockerd.started" || { log "not running (run: $0 start)"; exit 1; }; print_env ;;
    *) echo "usage: $0 start|stop|env" >&2; exit 2 ;;
esac
