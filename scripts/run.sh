#!/usr/bin/env bash
# Serves the app (HTTP + websockets through Daphne) with its task worker.
# Without REDIS_URL the in-memory channel layer cannot cross processes, so the
# worker loop runs inside the server process; with REDIS_URL it is its own
# process. On exit every child is stopped, and killed if it lingers.
set -u
cd "$(dirname "$0")/.."
PY=.venv/bin/python
ADDR=${RUN_ADDR:-127.0.0.1:8000}
# Settings build the callback URL on it when PUBLIC_BASE_URL is unset.
export RUN_ADDR=$ADDR
pids=()
cleanup() {
  trap - INT TERM EXIT
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null; done
  for _ in $(seq 1 50); do
    alive=0
    for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
    [ $alive = 0 ] && break
    sleep 0.1
  done
  for pid in "${pids[@]}"; do kill -KILL "$pid" 2>/dev/null; pkill -KILL -P "$pid" 2>/dev/null; done
  exit 0
}
trap cleanup INT TERM EXIT
# Metrics of every process go to one directory (prometheus-client's
# multiprocess mode); files of an earlier run would be summed in.
if [ -n "${PROMETHEUS_MULTIPROC_DIR:-}" ]; then
  rm -rf "${PROMETHEUS_MULTIPROC_DIR:?}"/*.db
  mkdir -p "$PROMETHEUS_MULTIPROC_DIR"
fi
if [ -z "${REDIS_URL:-}" ]; then
  export TASKS_WORKER_IN_PROCESS=1
  where="in the server process"
else
  $PY manage.py tasks_worker &
  pids+=($!)
  where="its own process"
fi
# The address to open: a wildcard host is reached on the loopback address.
port=${ADDR##*:}
host=${ADDR%:*}
[ "$host" = "$ADDR" ] && host=127.0.0.1
case "$host" in ""|0|0.0.0.0|"[::]"|::) host=127.0.0.1 ;; esac
callback=$($PY -c 'import django.conf, os; os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatproject.settings"); print(django.conf.settings.PUBLIC_BASE_URL)' 2>/dev/null)
# Without n8n, the development runner is the one (default) assistant.
$PY manage.py ensure_dev_assistant >/dev/null
echo "Serving on http://$host:$port/ (task worker: $where; n8n calls back at ${callback:-PUBLIC_BASE_URL})"
$PY manage.py runserver "$ADDR" &
pids+=($!)
wait -n "${pids[@]}"
