#!/usr/bin/env bash
# The protocol core's criterion benches (mask, frame, handshake, utf8,
# deflate) at two commits, interleaved: base, head,
# base, head ... ROUNDS rounds. Prints, per benchmark, the median over rounds
# of criterion's median estimate at each side, and head ÷ base; a ratio above
# 1 + TOLERANCE is flagged as a regression (exit status 1).
#
#   bash benches/regress.sh BASE [HEAD]     # e.g. 190e8fa; HEAD by default
#   ROUNDS=5 TIME=3 BENCHES="mask frame" bash benches/regress.sh BASE
#
# Each commit is exported (git archive) to its own directory under /tmp (so
# edits to the working tree during a run change nothing) and built there
# with its own benches, so an API change between the commits does not
# matter. The export and the build directory are kept, keyed by commit: the
# files carry the commit's time, so a later run of the same commits finds
# the build up to date (a fresh checkout's new file times made cargo rebuild
# the crate and its benches, about 10 minutes).
# Only benchmarks present at both sides are compared. Each bench gets TIME
# seconds of measurement (and 1 s of warm-up) per benchmark and round.
set -euo pipefail

base=${1:?usage: regress.sh BASE-COMMIT [HEAD-COMMIT]}
head=${2:-HEAD}
ROUNDS=${ROUNDS:-3}
TIME=${TIME:-2}
TOLERANCE=${TOLERANCE:-0.05}
BENCHES=${BENCHES:-"mask frame handshake utf8 deflate"}

root=$(cd "$(dirname "$0")/.." && pwd)
# side -> short commit id, its exported source, and its build directory.
declare -A sha dir target
for side in base head; do
    commit=$([ $side = base ] && echo "$base" || echo "$head")
    sha[$side]=$(cd "$root" && git rev-parse --short "$commit")
    dir[$side]=/tmp/wsreactor-regress-src-${sha[$side]}
    target[$side]=/tmp/wsreactor-regress-target-${sha[$side]}
done
out=$root/target/regress/$(date +%Y%m%d-%H%M%S)
mkdir -p "$out"

for side in base head; do
    d=${dir[$side]}
    if [ ! -f "$d/Cargo.toml" ]; then
        rm -rf "$d.part" && mkdir -p "$d.part"
        (cd "$root" && git archive --format=tar "${sha[$side]}") | tar -x -C "$d.part"
        mv "$d.part" "$d"
    fi
done

# The table is read from the saved baselines r1..rROUNDS: drop those of
# earlier runs first, or benches left out of BENCHES this time would be
# reported with old figures.
for side in base head; do
    if [ -d "${target[$side]}/criterion" ]; then
        find "${target[$side]}/criterion" -type d -name 'r[0-9]*' -prune -exec rm -rf {} +
    fi
done

for side in base head; do
    echo "regress.sh: building the benches at $side" >&2
    (cd "${dir[$side]}" && CARGO_TARGET_DIR=${target[$side]} cargo bench --quiet --no-run $(printf -- '--bench %s ' $BENCHES) \
        >"$out/build.$side.log" 2>&1) || { echo "regress.sh: the build at $side failed: $out/build.$side.log" >&2; exit 2; }
done

for r in $(seq "$ROUNDS"); do
    for side in base head; do
        for b in $BENCHES; do
            echo "regress.sh: round $r/$ROUNDS, $side, $b" >&2
            (cd "${dir[$side]}" && CARGO_TARGET_DIR=${target[$side]} cargo bench --quiet --bench "$b" -- --save-baseline "r$r" \
                --warm-up-time 1 --measurement-time "$TIME" --noplot >"$out/$side.$b.$r.log" 2>&1)
        done
    done
done

python3 - "${target[base]}/criterion" "${target[head]}/criterion" "$ROUNDS" "$TOLERANCE" \
    "${sha[base]}" "${sha[head]}" <<'PY'
import json, pathlib, statistics, sys

base_dir, head_dir, rounds, tol, sha, head_sha = sys.argv[1:3] + [int(sys.argv[3]), float(sys.argv[4])] + sys.argv[5:7]

def medians(root):
    """benchmark id -> criterion's median estimate (ns) per round."""
    found = {}
    for est in pathlib.Path(root).glob("**/r*/estimates.json"):
        rnd = est.parent.name
        if not rnd[1:].isdigit() or int(rnd[1:]) > rounds:
            continue
        bench = str(est.parent.parent.relative_to(root))
        found.setdefault(bench, []).append(json.loads(est.read_text())["median"]["point_estimate"])
    return found

base, head = medians(base_dir), medians(head_dir)
worst = 0.0
print(f"| benchmark | {sha} | {head_sha} | ratio |")
print("|---|---|---|---|")
for bench in sorted(set(base) & set(head)):
    b, h = statistics.median(base[bench]), statistics.median(head[bench])
    ratio = h / b
    worst = max(worst, ratio)
    flag = " **slower**" if ratio > 1 + tol else ""
    fmt = lambda ns: f"{ns / 1000:.2f} µs" if ns >= 1000 else f"{ns:.1f} ns"
    print(f"| {bench} | {fmt(b)} | {fmt(h)} | {ratio:.3f}{flag} |")
print(f"\nmedians of {rounds} interleaved rounds of criterion's median; worst head ÷ base {worst:.3f}")
sys.exit(1 if worst > 1 + tol else 0)
PY
