#!/usr/bin/env bash
# Runs a local n8n for development and installs this project's workflows into
# it with `manage.py n8n_setup`:
#   N8N_WEBHOOK_SECRET=… scripts/n8n-dev.sh [VERSION]        # default 2.8.4; 2.41.1 works too
# On the first start it sets up n8n's owner (N8N_OWNER_EMAIL / N8N_OWNER_PASSWORD,
# defaults below) and an API key, kept in $N8N_USER_FOLDER/chatproject-api-key
# (or use N8N_API_KEY). It installs chat-reply-offline, and chat-reply too when
# N8N_MODEL_BASE_URL (and N8N_MODEL_API_KEY) name an OpenAI-compatible server.
# Then run the app with N8N_BASE_URL=http://127.0.0.1:5678 N8N_WEBHOOK_SECRET=… and
# N8N_CHAT_WORKFLOW=chat-reply-offline (or chat-reply). State lives in
# N8N_USER_FOLDER (default ~/.local/share/chatproject/n8n). Ctrl-C stops n8n.
set -euo pipefail
cd "$(dirname "$0")/.."
: "${N8N_WEBHOOK_SECRET:?set N8N_WEBHOOK_SECRET (the same value the app uses)}"
version=${1:-2.8.4}
launcher=$(bash scripts/install-n8n.sh "$version")
export N8N_USER_FOLDER=${N8N_USER_FOLDER:-$HOME/.local/share/chatproject/n8n}
export N8N_PORT=${N8N_PORT:-5678} N8N_LISTEN_ADDRESS=${N8N_LISTEN_ADDRESS:-127.0.0.1}
export N8N_DIAGNOSTICS_ENABLED=false N8N_VERSION_NOTIFICATIONS_ENABLED=false
export N8N_TEMPLATES_ENABLED=false N8N_COMMUNITY_PACKAGES_ENABLED=false
export N8N_PERSONALIZATION_ENABLED=false N8N_SECURE_COOKIE=false
owner_email=${N8N_OWNER_EMAIL:-owner@chatproject.localhost}
owner_password=${N8N_OWNER_PASSWORD:-Chatproject-dev-1}
base_url="http://127.0.0.1:$N8N_PORT"
mkdir -p "$N8N_USER_FOLDER"

"$launcher" start &
n8n_pid=$!
trap 'kill "$n8n_pid" 2>/dev/null || true; wait "$n8n_pid" 2>/dev/null || true' EXIT INT TERM
for _ in $(seq 1 180); do
  # /healthz answers before the REST routes exist, and while n8n starts every
  # path answers a "starting up" page: wait for the settings route's JSON.
  curl -fsS "$base_url/rest/settings" 2>/dev/null | grep -q '"data"' && break
  kill -0 "$n8n_pid" 2>/dev/null || { echo "n8n exited" >&2; exit 1; }
  sleep 1
done

key_file="$N8N_USER_FOLDER/chatproject-api-key"
if [ -z "${N8N_API_KEY:-}" ]; then
  if [ ! -s "$key_file" ]; then
    (umask 077 && .venv/bin/python -c '
import sys
from n8n.bootstrap import bootstrap_api_key
print(bootstrap_api_key(*sys.argv[1:4]))' "$base_url" "$owner_email" "$owner_password" > "$key_file")
  fi
  N8N_API_KEY=$(cat "$key_file")
fi
files=(n8n/chat-reply-offline.json)
if [ -n "${N8N_MODEL_BASE_URL:-}" ]; then files+=(n8n/chat-reply.json); fi
N8N_BASE_URL="$base_url" N8N_API_KEY="$N8N_API_KEY" DEBUG=${DEBUG:-1} \
  .venv/bin/python manage.py n8n_setup "${files[@]}"
echo "n8n $version is running at $base_url (owner $owner_email); Ctrl-C stops it"
wait "$n8n_pid"
