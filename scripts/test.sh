#!/usr/bin/env bash
# The whole test suite, on a fresh machine: installs what the tests need (nginx for the
# proxy tests, redis-server for the backplane's tests, chromium for the JS client's browser
# tests, promtool (Debian's prometheus) for the alert rule tests, the official AG-UI client
# from npm, the official AG-UI Python SDK in a virtualenv for the agent proxy's tests), checks
# formatting, lints and docs, then runs
# every test of the workspace and of the JS client. Servers the tests need are started by the
# tests themselves, on loopback only.
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

missing=()
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || missing+=(nginx)
command -v node >/dev/null 2>&1 || missing+=(nodejs npm)
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
[ -x /usr/bin/chromium ] || missing+=(chromium)
command -v promtool >/dev/null 2>&1 || missing+=(prometheus) # promtool, for the alert rule tests
python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || missing+=(python3 python3-venv) # the proxy tests' agent
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "${missing[@]}" >/dev/null
fi
export PATH="$PATH:/usr/sbin"

for dir in crates/*/tests/conformance; do
  if [ -f "$dir/package-lock.json" ] && [ ! -d "$dir/node_modules" ]; then
    echo "installing npm packages in $dir"
    (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
  fi
done

# The AG-UI agent server of the agent proxy's tests (crates/tether-cli/tests/agent): the
# official Python SDK `ag-ui-protocol` on Starlette and uvicorn, pinned in requirements.txt,
# in a virtualenv of its own; made again when the pins change.
agent_dir=crates/tether-cli/tests/agent
if ! cmp -s "$agent_dir/requirements.txt" "$agent_dir/.venv/requirements.txt"; then
  echo "installing the test agent's Python packages in $agent_dir/.venv"
  rm -rf "$agent_dir/.venv"
  python3 -m venv "$agent_dir/.venv"
  "$agent_dir/.venv/bin/pip" install --quiet --disable-pip-version-check -r "$agent_dir/requirements.txt"
  cp "$agent_dir/requirements.txt" "$agent_dir/.venv/requirements.txt"
fi

# One build from scratch: incremental state would only add gigabytes to the target directory.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
cargo fmt --all --check
cargo clippy --workspace --all-targets --all-features --quiet -- -D warnings
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --all-features --quiet

export PROPTEST_CASES="${PROPTEST_CASES:-1000}"
export RUST_BACKTRACE=1

# Doc-tests first (nextest does not run them), then every other test; the runner's summary
# is the last line.
cargo test --workspace --all-features --doc --quiet
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --all-features --no-fail-fast --failure-output final
else
  cargo test --workspace --all-features --no-fail-fast
fi

# The JS client (clients/js): Node's test runner against the hub binary built above.
node_major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
if [ "$node_major" -lt 20 ]; then
  echo "error: the JS client's tests need Node >= 20, found $(node --version 2>/dev/null || echo none); install Node 20 or newer" >&2
  exit 1
fi
# The hub and the AG-UI example (its page runs in Chromium); no-ops when the cargo tests built them.
cargo build -p tether-cli -p example-agui-agent --quiet
# Its dev dependencies from the lock file: @ag-ui/client 1.0.0 and rxjs (TetherAgent's tests),
# playwright-core (drives Debian's chromium), esbuild (rebuilds the example's page bundle).
if [ ! -d clients/js/node_modules ]; then
  echo "installing npm packages in clients/js"
  (cd clients/js && npm ci --no-audit --no-fund --loglevel=error)
fi
(cd clients/js && CI="${CI:-true}" TETHER_BIN="${TETHER_BIN:-../../target/debug/tether}" npm test)
