#!/usr/bin/env bash
# Checks tether-agui's fixtures with the official AG-UI 1.0 TypeScript client.
#
#   run.sh                  every check below, against tests/data/
#   run.sh validate ARGS..  node validate-events.mjs ARGS..
#   run.sh check ARGS..     node check-stream.mjs ARGS..
#
# Installs the pinned packages with `npm ci` when node_modules is missing.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here"
data="../data"

if [ ! -d node_modules ]; then
  npm ci --no-audit --no-fund
fi

case "${1:-all}" in
  validate)
    shift
    exec node validate-events.mjs "$@"
    ;;
  check)
    shift
    exec node check-stream.mjs "$@"
    ;;
  all)
    ;;
  *)
    echo "usage: run.sh [validate ARGS.. | check ARGS..]" >&2
    exit 2
    ;;
esac

status=0
step() {
  echo "== $1"
  shift
  if ! "$@"; then
    status=1
  fi
}

step "valid events: the official schemas accept every line, nothing to strip, every type present" \
  node validate-events.mjs --strict --coverage "$data/events.jsonl"
step "run inputs: RunAgentInputSchema accepts every line" \
  node validate-events.mjs --strict --schema RunAgentInputSchema "$data/run-agent-input.jsonl"
step "invalid events: the official schemas reject every line" \
  node validate-events.mjs --invalid "$data/invalid-events.jsonl"
step "legacy events: rejected by the bare schemas" \
  node validate-events.mjs --invalid "$data/legacy-events.jsonl"
step "legacy events: accepted by the client's compatibility boundary" \
  node validate-events.mjs --client "$data/legacy-events.jsonl"
step "streams named pass-*: the client accepts each" \
  node check-stream.mjs "$data"/streams/pass-*.sse

echo "== streams named fail-*: the client rejects each"
for body in "$data"/streams/fail-*.sse; do
  if node check-stream.mjs --quiet "$body"; then
    echo "unexpected PASS: $body"
    status=1
  fi
done

if [ "$status" -eq 0 ]; then
  echo "== all conformance checks passed"
else
  echo "== some conformance checks failed" >&2
fi
exit "$status"
