#!/usr/bin/env bash
# Installs the real n8n used by the end-to-end tests into a cache folder outside
# the repository, and reuses it when it is already there.
#   N8N_HOME (default ~/.cache/chatproject/n8n-2.8.4) receives node_modules.
# n8n 2.8.4 is the newest release that runs on Node 20; its n8n-nodes-base pulls
# xlsx from a CDN that cannot be reached here, hence the override to the
# registry's xlsx 0.18.5. Takes about 5 minutes and 2.3 GB the first time.
set -euo pipefail
N8N_VERSION=2.8.4
N8N_HOME=${N8N_HOME:-$HOME/.cache/chatproject/n8n-$N8N_VERSION}
bin="$N8N_HOME/node_modules/.bin/n8n"
if [ -x "$bin" ] && [ -f "$N8N_HOME/.installed" ]; then
  echo "$bin"
  exit 0
fi
mkdir -p "$N8N_HOME"
cd "$N8N_HOME"
cat > package.json <<JSON
{
  "name": "chatproject-n8n-cache",
  "private": true,
  "dependencies": {"n8n": "$N8N_VERSION"},
  "overrides": {"xlsx": "0.18.5"}
}
JSON
npm install --no-audit --no-fund --loglevel=error >&2
touch .installed
echo "$bin"
