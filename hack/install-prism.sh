#!/usr/bin/env bash
# Prism serving GitHub's own OpenAPI description, for the GitHub API tests: npm packages pinned,
# installed once into a cache outside the repo (the spec package is ~475 MB), and the spec cut down
# to the paths we call. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
PRISM_VERSION=5.16.0
OPENAPI_VERSION=23.0.2
CACHE=${BLUEGREEN_CACHE:-$HOME/.cache/bluegreen}/prism
stamp=$CACHE/.installed-$PRISM_VERSION-$OPENAPI_VERSION
mkdir -p "$CACHE"
if [ ! -f "$stamp" ]; then
  echo "installing @stoplight/prism-cli $PRISM_VERSION and @octokit/openapi $OPENAPI_VERSION" >&2
  (cd "$CACHE" && { [ -f package.json ] || echo '{"name": "bluegreen-prism", "private": true}' > package.json; } \
    && npm install --silent --no-audit --no-fund --save-exact \
      "@stoplight/prism-cli@$PRISM_VERSION" "@octokit/openapi@$OPENAPI_VERSION")
  touch "$stamp"
fi
spec=$CACHE/node_modules/@octokit/openapi/generated/api.github.com.json
if [ ! -f "$CACHE/github-pruned.json" ] || [ hack/prune-openapi.py -nt "$CACHE/github-pruned.json" ]; then
  python3 hack/prune-openapi.py "$spec" "$CACHE/github-pruned.json"
fi
