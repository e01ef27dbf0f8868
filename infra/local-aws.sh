#!/usr/bin/env bash
# Local AWS for tests and the demo: a moto server on 127.0.0.1.
#
#   infra/local-aws.sh start    start moto (stops a stale one we started before), wait until it answers
#   infra/local-aws.sh stop     stop the moto we started (pid in .local/moto.pid); no-op if none
#   infra/local-aws.sh status   exit 0 if our moto answers
#   infra/local-aws.sh reset    wipe moto's state without restarting it
#
# Environment: MOTO_PORT (default 5055), VENV (default .venv). Logs go to .local/moto.log.
# Only the process recorded in the pid file is ever signalled.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${VENV:-$ROOT/.venv}"
PORT="${MOTO_PORT:-5055}"
STATE_DIR="$ROOT/.local"
PID_FILE="$STATE_DIR/moto.pid"
LOG_FILE="$STATE_DIR/moto.log"
URL="http://127.0.0.1:$PORT"

log() { printf 'local-aws: %s\n' "$*" >&2; }

# Exit 0 if something answers moto's own API on the port.
answers() {
    "$VENV/bin/python" - "$URL/moto-api/data.json" <<'PY' >/dev/null 2>&1
import sys, urllib.request
with urllib.request.urlopen(sys.argv[1], timeout=1) as r:
    sys.exit(0 if r.status == 200 else 1)
PY
}

# Exit 0 if anything at all accepts TCP connections on the port.
port_taken() {
    "$VENV/bin/python" - "$PORT" <<'PY' >/dev/null 2>&1
import socket, sys
s = socket.socket()
s.settimeout(0.5)
sys.exit(0 if s.connect_ex(("127.0.0.1", int(sys.argv[1]))) == 0 else 1)
PY
}

our_pid() {
    [[ -f "$PID_FILE" ]] || return 1
    local pid
    pid="$(cat "$PID_FILE")"
    [[ "$pid" =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null && echo "$pid"
}

stop() {
    local pid
    if ! pid="$(our_pid)"; then
        rm -f "$PID_FILE"
        return 0
    fi
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        log "moto (pid $pid) ignored SIGTERM; sending SIGKILL"
        kill -9 "$pid" 2>/dev/null || true
    fi
    rm -f "$PID_FILE"
    log "stopped moto (pid $pid)"
}

start() {
    if [[ ! -x "$VENV/bin/moto_server" ]]; then
        log "$VENV/bin/moto_server not found: run 'make venv' first"
        exit 1
    fi
    mkdir -p "$STATE_DIR"
    stop # a moto left over from an interrupted run of ours
    if port_taken; then
        log "port $PORT is already in use by another process; set MOTO_PORT to a free port"
        exit 1
    fi
    # moto's server behind infra/moto_server.py, which gives it the atomicity AWS guarantees.
    nohup "$VENV/bin/python" "$ROOT/infra/moto_server.py" -H 127.0.0.1 -p "$PORT" >"$LOG_FILE" 2>&1 </dev/null &
    local pid=$!
    echo "$pid" >"$PID_FILE"
    for _ in $(seq 1 150); do
        if answers; then
            log "moto listening on $URL (pid $pid, log $LOG_FILE)"
            return 0
        fi
        if ! kill -0 "$pid" 2>/dev/null; then
            log "moto exited during start-up; last lines of $LOG_FILE:"
            tail -n 20 "$LOG_FILE" >&2 || true
            rm -f "$PID_FILE"
            exit 1
        fi
        sleep 0.2
    done
    log "moto did not answer on $URL within 30 s"
    stop
    exit 1
}

reset() {
    "$VENV/bin/python" - "$URL/moto-api/reset" <<'PY'
import sys, urllib.request
urllib.request.urlopen(urllib.request.Request(sys.argv[1], method="POST"), timeout=5)
PY
    log "moto state reset"
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    status) answers ;;
    reset) reset ;;
    *)
        echo "usage: $0 start|stop|status|reset" >&2
        exit 2
        ;;
esac
