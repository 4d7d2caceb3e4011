#!/usr/bin/env bash
# Installs axe-core (the accessibility checker the browser tests inject into
# pages) into a cache folder outside the repository, and reuses it when it is
# already there. Prints the path of axe.min.js.
#   AXE_HOME (default ~/.cache/chatproject/axe-core-4.14.1) receives node_modules.
set -euo pipefail
AXE_VERSION=4.14.1
AXE_HOME=${AXE_HOME:-$HOME/.cache/chatproject/axe-core-$AXE_VERSION}
script="$AXE_HOME/node_modules/axe-core/axe.min.js"
if [ -f "$script" ] && [ -f "$AXE_HOME/.installed" ]; then
  echo "$script"
  exit 0
fi
mkdir -p "$AXE_HOME"
cd "$AXE_HOME"
cat > package.json <<JSON
{
  "name": "chatproject-axe-cache",
  "private": true,
  "dependencies": {"axe-core": "$AXE_VERSION"}
}
JSON
npm install --no-audit --no-fund --loglevel=error >&2
touch .installed
echo "$script"
