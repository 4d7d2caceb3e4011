#!/usr/bin/env bash
# Runs a local n8n for development with this project's workflows:
#   N8N_WEBHOOK_SECRET=… scripts/n8n-dev.sh            # imports, publishes chat-reply-offline, starts
#   N8N_WORKFLOW_IDS="ChatReplyModel01" scripts/n8n-dev.sh   # publish the model workflow instead
# Then run the app with N8N_BASE_URL=http://127.0.0.1:5678 N8N_WEBHOOK_SECRET=… and
# N8N_CHAT_WORKFLOW=chat-reply-offline (or chat-reply once its model credential is set in
# the editor). State lives in N8N_USER_FOLDER (default ~/.local/share/chatproject/n8n).
set -euo pipefail
cd "$(dirname "$0")/.."
: "${N8N_WEBHOOK_SECRET:?set N8N_WEBHOOK_SECRET (the same value the app uses)}"
N8N_BIN=${N8N_BIN:-$(bash scripts/install-n8n.sh)}
export N8N_USER_FOLDER=${N8N_USER_FOLDER:-$HOME/.local/share/chatproject/n8n}
export N8N_PORT=${N8N_PORT:-5678} N8N_LISTEN_ADDRESS=${N8N_LISTEN_ADDRESS:-127.0.0.1}
export N8N_DIAGNOSTICS_ENABLED=false N8N_VERSION_NOTIFICATIONS_ENABLED=false
export N8N_TEMPLATES_ENABLED=false N8N_COMMUNITY_PACKAGES_ENABLED=false
export N8N_PERSONALIZATION_ENABLED=false N8N_SECURE_COOKIE=false
ids=${N8N_WORKFLOW_IDS:-ChatReplyOffln01}
mkdir -p "$N8N_USER_FOLDER"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python3 - "$work/credentials.json" <<'PY'
import json, os, sys
cred = json.load(open("n8n/credentials/header-auth.example.json"))
cred[0]["data"]["value"] = "Bearer " + os.environ["N8N_WEBHOOK_SECRET"]
json.dump(cred, open(sys.argv[1], "w"))
PY
mkdir "$work/workflows"
cp n8n/chat-reply.json n8n/chat-reply-offline.json "$work/workflows/"
"$N8N_BIN" import:credentials --input="$work/credentials.json"
"$N8N_BIN" import:workflow --separate --input="$work/workflows"
for id in $ids; do "$N8N_BIN" publish:workflow --id="$id"; done
rm -rf "$work"
trap - EXIT
exec "$N8N_BIN" start
