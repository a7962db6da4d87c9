#!/usr/bin/env bash
# Start or stop a real Milvus standalone server (PyPI `milvus` 2.3.5: embedded etcd, local storage)
# reachable on 127.0.0.1 only, for the tests and benchmarks of the Milvus store.
#
#   scripts/milvus-server.sh start    install (first time) and start; returns once it answers
#   scripts/milvus-server.sh stop     stop it (data is kept under $MILVUS_HOME/data)
#   scripts/milvus-server.sh status   exit 0 when running
#   scripts/milvus-server.sh clean    stop and remove the data directory
#   scripts/milvus-server.sh exec CMD run CMD inside the server's network namespace (benchmarks)
#
# Why a network namespace: Milvus 2.3 listens on every interface (":19530", ":9091", the
# coordinators' ports ...) whatever its `ip` settings say, so the server runs inside a private
# network namespace (`unshare -n`) where only loopback exists, and a small forwarder in the host
# namespace listens on 127.0.0.1:$MILVUS_PORT and relays into it. Nothing is reachable from
# outside this machine. Needs root (or CAP_SYS_ADMIN) for unshare/setns, as CI has.
#
# Environment: MILVUS_PORT (host port, default 19530), MILVUS_HOME (default .cache/milvus in the
# repository, which git ignores), MILVUS_PYTHON (python used to create the server's own venv,
# default python3), MILVUS_START_TIMEOUT (seconds, default 180).
set -euo pipefail

REPO="$(cd "$(dirname "$0")/.." && pwd)"
PORT="${MILVUS_PORT:-19530}"
HOME_DIR="${MILVUS_HOME:-$REPO/.cache/milvus}"
VENV="$HOME_DIR/venv"
RUN="$HOME_DIR/run"
DATA="$HOME_DIR/data"
PYTHON="${MILVUS_PYTHON:-python3}"
TIMEOUT="${MILVUS_START_TIMEOUT:-180}"
INNER_PORT=19530  # inside the namespace nothing else competes for the default port

log() { echo "milvus-server: $*" >&2; }

alive() { [[ -f "$1" ]] && kill -0 "$(cat "$1")" 2>/dev/null; }

install() {
  if [[ -x "$VENV/bin/milvus-server" ]]; then return; fi
  # Its own venv: the server package is a binary launcher and must not touch the project's pins.
  log "installing milvus==2.3.5 into $VENV"
  "$PYTHON" -m venv "$VENV"
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check "milvus==2.3.5"
}

write_forwarder() {
  # TCP relay: listen on the host's 127.0.0.1:ARGV1, connect inside the namespace of pid ARGV2.
  cat >"$RUN/forward.py" <<'PY'
import asyncio, ctypes, os, socket, sys

listen_port, ns_pid, inner_port = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
listener.bind(("127.0.0.1", listen_port))  # created in the host namespace, before setns
listener.listen(256)
fd = os.open(f"/proc/{ns_pid}/ns/net", os.O_RDONLY)
libc = ctypes.CDLL(None, use_errno=True)
if libc.setns(fd, 0x40000000) != 0:  # CLONE_NEWNET: sockets made from now on live inside
    raise OSError(ctypes.get_errno(), "setns into the server's network namespace failed")


async def pipe(reader, writer):
    try:
        while data := await reader.read(1 << 16):
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except (ConnectionError, OSError):
        writer.close()


async def handle(reader, writer):
    try:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", inner_port)
    except OSError:
        writer.close()
        return
    up_writer.transport.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    writer.transport.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
    writer.close()
    up_writer.close()


async def main():
    server = await asyncio.start_server(handle, sock=listener)
    async with server:
        await server.serve_forever()


asyncio.run(main())
PY
}

port_open() {
  "$VENV/bin/python" - "$1" <<'PY'
import socket, sys
s = socket.socket()
s.settimeout(1)
sys.exit(0 if s.connect_ex(("127.0.0.1", int(sys.argv[1]))) == 0 else 1)
PY
}

start() {
  if alive "$RUN/server.pid" && alive "$RUN/forward.pid"; then
    log "already running on 127.0.0.1:$PORT"; return 0
  fi
  stop >/dev/null 2>&1 || true
  install
  if port_open "$PORT"; then
    log "port 127.0.0.1:$PORT is already taken; set MILVUS_PORT"; exit 1
  fi
  mkdir -p "$RUN" "$DATA"
  # The launcher unpacks the binaries, writes its config under $DATA, starts `milvus run
  # standalone` and prints a banner once /healthz answers.
  setsid unshare -n sh -c 'ip link set lo up && exec "$0" --data "$1" --proxy-port "$2"' \
    "$VENV/bin/milvus-server" "$DATA" "$INNER_PORT" >"$RUN/server.log" 2>&1 &
  echo $! >"$RUN/server.pid"
  local waited=0
  until grep -q "Ctrl+C to exit" "$RUN/server.log" 2>/dev/null; do
    if ! alive "$RUN/server.pid"; then
      log "server exited during start; see $RUN/server.log and $DATA/logs"; tail -20 "$RUN/server.log" >&2
      exit 1
    fi
    if (( waited >= TIMEOUT )); then log "not up after ${TIMEOUT}s"; stop; exit 1; fi
    sleep 1; waited=$((waited + 1))
  done
  write_forwarder
  setsid "$VENV/bin/python" "$RUN/forward.py" "$PORT" "$(cat "$RUN/server.pid")" "$INNER_PORT" \
    >"$RUN/forward.log" 2>&1 &
  echo $! >"$RUN/forward.pid"
  until port_open "$PORT"; do
    if ! alive "$RUN/forward.pid"; then log "forwarder failed:"; cat "$RUN/forward.log" >&2; stop; exit 1; fi
    sleep 0.2
  done
  log "running: milvus://127.0.0.1:$PORT (server pid $(cat "$RUN/server.pid"), data $DATA)"
}

stop_pid() {  # stop_pid PIDFILE SIGNAL: signal, wait up to 15 s, then SIGKILL
  local file=$1 sig=$2 pid
  [[ -f "$file" ]] || return 0
  pid=$(cat "$file")
  if kill -0 "$pid" 2>/dev/null; then
    kill "-$sig" "$pid" 2>/dev/null || true
    for _ in $(seq 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$file"
}

stop() {
  stop_pid "$RUN/forward.pid" TERM
  if [[ -f "$RUN/server.pid" ]]; then
    # The launcher stops its `milvus` child on SIGINT; remember the child in case it does not.
    local child
    child=$(pgrep -P "$(cat "$RUN/server.pid")" 2>/dev/null || true)
    stop_pid "$RUN/server.pid" INT
    for pid in $child; do kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null || true; done
  fi
  log "stopped"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status)
    if alive "$RUN/server.pid" && alive "$RUN/forward.pid"; then
      echo "running on 127.0.0.1:$PORT"
    else
      echo "not running"; exit 1
    fi ;;
  clean) stop; rm -rf "$DATA" "$RUN" ;;
  exec)
    shift
    alive "$RUN/server.pid" || { log "not running"; exit 1; }
    exec nsenter --net="/proc/$(cat "$RUN/server.pid")/ns/net" -- "$@" ;;
  *) echo "usage: $0 start|stop|status|clean|exec CMD..." >&2; exit 2 ;;
esac
