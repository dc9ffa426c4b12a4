#!/usr/bin/env bash
# Instruction counts (callgrind's Ir) of the broker's hot paths: runs the `instructions` bench
# of benches/instructions under iai-callgrind, RUNS times, and writes the median of each
# benchmark, with its change against the committed baseline, to benches/results/instructions.md.
#
# Installs what it needs when missing: valgrind and python3 (Debian packages) and the
# `iai-callgrind-runner` binary of exactly the version of the `iai-callgrind` library in
# Cargo.lock (the library refuses any other runner).
#
# Settings (environment):
#   RUNS=3                   runs of the bench; the table shows each benchmark's median and range
#   UPDATE_BASELINE=1        also write the medians to the baseline file, with the commit
#                            measured (refused when tracked files differ from that commit,
#                            benches/results aside)
#   MAX_INCREASE_PCT=N       exit 1 when a benchmark's median is more than N percent above its
#                            baseline (default: report only)
#   OUT=benches/results/instructions.md
#   BASELINE=benches/results/instructions-baseline.json
set -euo pipefail
cd "$(dirname "$0")/.."

RUNS=${RUNS:-3}
UPDATE_BASELINE=${UPDATE_BASELINE:-0}
MAX_INCREASE_PCT=${MAX_INCREASE_PCT:-}
OUT=${OUT:-benches/results/instructions.md}
BASELINE=${BASELINE:-benches/results/instructions-baseline.json}

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

missing=()
command -v valgrind >/dev/null 2>&1 || missing+=(valgrind)
command -v python3 >/dev/null 2>&1 || missing+=(python3)
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# The runner must be the library's version: read it from the lock file.
version=$(awk '/^name = "iai-callgrind"$/ { getline; gsub(/"/, "", $3); print $3; exit }' Cargo.lock)
if [ -z "$version" ]; then
  echo "error: iai-callgrind is not in Cargo.lock" >&2
  exit 1
fi
cargo_bin="${CARGO_HOME:-$HOME/.cargo}/bin"
export PATH="$cargo_bin:$PATH"
if ! cargo install --list | grep -qx "iai-callgrind-runner v$version:"; then
  echo "installing iai-callgrind-runner $version"
  cargo install iai-callgrind-runner --version "$version" --locked
fi

commit=$(git rev-parse HEAD)
dirty=false
if ! git diff --quiet HEAD -- . ':(exclude)benches/results'; then
  dirty=true
fi
if [ "$UPDATE_BASELINE" = 1 ] && [ "$dirty" = true ]; then
  echo "error: UPDATE_BASELINE needs a clean tree (benches/results aside): commit first, so the baseline names the code it measured" >&2
  exit 1
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cargo bench -p tether-instructions --bench instructions --no-run
for run in $(seq 1 "$RUNS"); do
  echo "run $run of $RUNS"
  # A fresh output home per run: each run's summaries stand alone.
  IAI_CALLGRIND_HOME="$work/run-$run" \
    cargo bench -q -p tether-instructions --bench instructions -- --save-summary=json
done

python3 - "$work" "$RUNS" "$OUT" "$BASELINE" "$UPDATE_BASELINE" "$commit" "$dirty" \
  "$version" "$(rustc --version)" "$(valgrind --version)" "$MAX_INCREASE_PCT" <<'PY'
import datetime, glob, json, os, statistics, sys

(work, runs, out, baseline_path, update, commit, dirty,
 iai_version, rustc, valgrind, max_increase) = sys.argv[1:]
runs = int(runs)

def ir(summary):
    """The benchmark's total Ir in this run (the new side of the comparison)."""
    for profile in summary["profiles"]:
        if profile["tool"] == "Callgrind":
            metrics = profile["summaries"]["total"]["summary"]["Callgrind"]["Ir"]["metrics"]
            new = metrics.get("Left") or metrics["Both"][0]
            return int(new["Int"])
    raise SystemExit(f"no callgrind profile in {summary['module_path']}")

counts, cases = {}, {}
for run in range(1, runs + 1):
    files = sorted(glob.glob(os.path.join(work, f"run-{run}", "**", "summary.json"), recursive=True))
    if not files:
        raise SystemExit(f"run {run} wrote no summary")
    for path in files:
        with open(path) as f:
            s = json.load(f)
        name = s["function_name"]
        case = f"{s['id']}: {s['details']}" if s.get("details") else s["id"]
        if cases.setdefault(name, case) != case:
            raise SystemExit(f"two cases of {name}: give each its own benchmark function")
        counts.setdefault(name, []).append(ir(s))

medians = {name: int(statistics.median(v)) for name, v in counts.items()}
baseline = {}
if os.path.exists(baseline_path):
    with open(baseline_path) as f:
        baseline = json.load(f)
base = baseline.get("instructions", {})

today = datetime.date.today().isoformat()
measured = commit + ("-dirty" if dirty == "true" else "")
lines = [
    "# Instruction counts of the hot paths",
    "",
    f"Written by `benches/instructions.sh` on {today}: commit `{measured}`, {rustc}, "
    f"{valgrind}, iai-callgrind {iai_version}. Callgrind's `Ir` (instructions executed) of "
    f"each benchmark function alone, setup excluded; median and range of {runs} run(s).",
    "",
    "| benchmark | case | Ir (median) | range | baseline | change |",
    "|---|---|---:|---:|---:|---:|",
]
worst = None
for name in counts:
    m, v = medians[name], counts[name]
    spread = f"{min(v):,}–{max(v):,}" if min(v) != max(v) else "exact"
    if name in base:
        b = base[name]
        pct = (m - b) / b * 100
        change = f"{pct:+.2f}%"
        worst = pct if worst is None else max(worst, pct)
    else:
        b, change = None, "new"
    b_text = f"{b:,}" if b is not None else "–"
    lines.append(f"| `{name}` | {cases[name]} | {m:,} | {spread} | {b_text} | {change} |")
gone = sorted(set(base) - set(medians))
lines.append("")
if baseline:
    lines.append(
        f"Baseline: `{baseline_path}`, commit `{baseline.get('commit', '?')}` "
        f"({baseline.get('date', '?')}, {baseline.get('rustc', '?')})."
    )
else:
    lines.append(f"No baseline yet at `{baseline_path}` (`UPDATE_BASELINE=1` writes one).")
if gone:
    lines.append("")
    lines.append("In the baseline but not measured: " + ", ".join(f"`{n}`" for n in gone) + ".")
lines.append("")
lines.append(
    "Range: the lowest and highest count of the runs (`exact`: every run counted the same). "
    "See `benches/README.md` for what moves a count between runs."
)
os.makedirs(os.path.dirname(out) or ".", exist_ok=True)
with open(out, "w") as f:
    f.write("\n".join(lines) + "\n")
print("\n".join(lines))

if update == "1":
    doc = {
        "commit": commit,
        "date": today,
        "rustc": rustc,
        "valgrind": valgrind,
        "iai_callgrind": iai_version,
        "runs": runs,
        "instructions": medians,
    }
    with open(baseline_path, "w") as f:
        json.dump(doc, f, indent=2)
        f.write("\n")
    print(f"baseline written to {baseline_path}")

if max_increase and worst is not None and worst > float(max_increase):
    print(f"error: a benchmark grew {worst:.2f}% over its baseline (limit {max_increase}%)", file=sys.stderr)
    sys.exit(1)
PY
