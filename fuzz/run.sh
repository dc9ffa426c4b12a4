#!/usr/bin/env bash
# Runs one fuzz target for a while: fuzz/run.sh TARGET SECONDS
#
# Stable Rust is enough: `-s none` turns the sanitizers off, which are what would need
# nightly; coverage instrumentation (`-Cpasses=sancov-module`) and libFuzzer work on stable.
# The fuzzer starts from the committed seeds in fuzz/corpus/TARGET and keeps the inputs it
# finds in fuzz/work/TARGET (not committed). Crashes go to fuzz/artifacts/TARGET: once fixed,
# copy the input into fuzz/corpus/TARGET so the root workspace's tests replay it for ever.
set -euo pipefail
cd "$(dirname "$0")"

if [ $# -ne 2 ]; then
  echo "usage: fuzz/run.sh TARGET SECONDS" >&2
  echo "targets: $(sed -n 's/^name = "\(.*\)"$/\1/p' Cargo.toml | grep -v tether-fuzz | tr '\n' ' ')" >&2
  exit 2
fi
target=$1
seconds=$2

if ! cargo fuzz --version >/dev/null 2>&1; then
  cargo install cargo-fuzz --locked
fi

mkdir -p "corpus/$target" "work/$target"
exec cargo fuzz run -s none "$target" "work/$target" "corpus/$target" -- -max_total_time="$seconds"
