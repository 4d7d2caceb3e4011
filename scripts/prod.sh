#!/usr/bin/env bash
# `make prod`: the production layout on one machine, in the foreground until
# Ctrl-C or SIGTERM (docs/OPERATIONS.md, "Production layout"). Fills the
# templates of deploy/ into PROD_DIR, migrates (through DATABASE_DIRECT_URL
# when set) and collects static files, then hands over to supervisord, which
# runs nginx on 127.0.0.1:PROD_PORT, PROD_DAPHNE Daphne processes and
# PROD_WORKERS task workers, restarts whichever exits, and stops them all on
# SIGTERM or Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
BASE_DIR=$(pwd)
PY=$BASE_DIR/.venv/bin/python

fail() { echo "make prod: $*" >&2; exit 2; }
# No embedded defaults in this layout: the three must be given.
for name in DATABASE_URL REDIS_URL SECRET_KEY; do
  [ -n "${!name:-}" ] || fail "$name is not set (this layout has no embedded default for it)"
done
case "$DATABASE_URL" in postgres://*|postgresql://*|pgsql://*) ;; *)
  fail "DATABASE_URL must be a PostgreSQL URL (several processes share it)" ;;
esac
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || fail "nginx is not installed (apt-get install nginx)"
NGINX=$(command -v nginx || echo /usr/sbin/nginx)

export DEBUG=0
export PROD_PORT=${PROD_PORT:-8080}
export PROD_DAPHNE=${PROD_DAPHNE:-2}
export PROD_WORKERS=${PROD_WORKERS:-2}
export PROD_DAPHNE_PORT=${PROD_DAPHNE_PORT:-$((PROD_PORT + 1))}
export PROD_DIR=${PROD_DIR:-$BASE_DIR/var/prod}
case "$PROD_DIR" in /*) ;; *) PROD_DIR=$BASE_DIR/$PROD_DIR ;; esac
export PROD_CLIENT_TIMEOUT=${PROD_CLIENT_TIMEOUT:-10}
export PROD_CONN_PER_CLIENT=${PROD_CONN_PER_CLIENT:-100}
export PROD_MAX_BODY=${PROD_MAX_BODY:-3m}
export LOG_FORMAT=${LOG_FORMAT:-plain}
# The proxy is the one peer whose X-Real-IP the app believes.
export CLIENT_IP_HEADER=${CLIENT_IP_HEADER:-X-Real-IP}
export TRUSTED_PROXIES=${TRUSTED_PROXIES:-127.0.0.1,::1}
export ALLOWED_HOSTS=${ALLOWED_HOSTS:-localhost,127.0.0.1}
export PUBLIC_BASE_URL=${PUBLIC_BASE_URL:-http://127.0.0.1:$PROD_PORT}
# Every process writes its metrics here; /metrics sums them.
export PROMETHEUS_MULTIPROC_DIR=${PROMETHEUS_MULTIPROC_DIR:-$PROD_DIR/metrics}
export PYTHONUNBUFFERED=1
for n in PROD_PORT PROD_DAPHNE PROD_WORKERS PROD_DAPHNE_PORT PROD_CLIENT_TIMEOUT PROD_CONN_PER_CLIENT; do
  [[ "${!n}" =~ ^[0-9]+$ ]] || fail "$n must be a whole number, not '${!n}'"
done
[ "$PROD_DAPHNE" -ge 1 ] || fail "PROD_DAPHNE must be at least 1"

# --- fill in the templates ------------------------------------------------------
mkdir -p "$PROD_DIR"/{run,log,tmp,systemd}
rm -rf "${PROMETHEUS_MULTIPROC_DIR:?}"
mkdir -p "$PROMETHEUS_MULTIPROC_DIR"
upstreams=""
for i in $(seq 0 $((PROD_DAPHNE - 1))); do
  upstreams+="        server 127.0.0.1:$((PROD_DAPHNE_PORT + i)) max_fails=0;"$'\n'
done
export DEPLOY_UPSTREAMS=${upstreams%$'\n'}
export DEPLOY_BASE_DIR=$BASE_DIR DEPLOY_PYTHON=$PY DEPLOY_NGINX=$NGINX
export DEPLOY_USER=$(id -un)
export DEPLOY_STATIC_ROOT=$BASE_DIR/staticfiles
export DEPLOY_NGINX_MIME_TYPES=${DEPLOY_NGINX_MIME_TYPES:-/etc/nginx/mime.types}
# The send form is the one URL that takes files: nginx lets through what the
# attachment limits allow there (the same figure Daphne's own check uses).
DEPLOY_SEND_MAX_BODY=$(DJANGO_SETTINGS_MODULE=chatproject.settings $PY -c \
  'import django; django.setup(); from chat.files.kinds import body_limit; print(body_limit())') \
  || fail "could not read the attachment limits from the settings"
export DEPLOY_SEND_MAX_BODY
$PY deploy/render.py deploy/nginx.conf "$PROD_DIR/nginx.conf"
$PY deploy/render.py deploy/supervisord.conf "$PROD_DIR/supervisord.conf"
for unit in deploy/systemd/*; do
  $PY deploy/render.py "$unit" "$PROD_DIR/systemd/$(basename "$unit")"
done
$NGINX -t -q -p "$PROD_DIR" -c "$PROD_DIR/nginx.conf" -e "$PROD_DIR/log/nginx-error.log" \
  || fail "nginx refused $PROD_DIR/nginx.conf (see above)"

# --- migrate and collect static files ---------------------------------------------
# Migrations go straight to PostgreSQL when DATABASE_DIRECT_URL is set: a
# transaction-pooling PgBouncer keeps no session for them.
DATABASE_URL=${DATABASE_DIRECT_URL:-$DATABASE_URL} $PY manage.py migrate --noinput
$PY manage.py collectstatic --noinput -v 0

echo "make prod: http://127.0.0.1:$PROD_PORT/ (nginx) -> $PROD_DAPHNE Daphne on" \
  "127.0.0.1:$PROD_DAPHNE_PORT.. and $PROD_WORKERS task workers; logs in $PROD_DIR/log;" \
  "status: .venv/bin/supervisorctl -c $PROD_DIR/supervisord.conf status"
exec "$BASE_DIR/.venv/bin/supervisord" -n -c "$PROD_DIR/supervisord.conf"
