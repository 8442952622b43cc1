#!/usr/bin/env bash
# Fuzz smoke test on the STABLE toolchain: `scripts/fuzz-smoke.sh [SECONDS]` (default 20).
#
# 1. Builds every target of fuzz/Cargo.toml with libFuzzer through the sanitizer-coverage
#    passes (no nightly, no sanitizer; see fuzz/README.md) into $FUZZ_TARGET_DIR
#    (default fuzz/target/stable, gitignored).
# 2. Replays every file in fuzz/regressions/<target>/.
# 3. Runs each target for SECONDS on a scratch copy of its committed corpus (finds never go
#    into fuzz/corpus), -rss_limit_mb=2048, $FUZZ_JOBS targets at a time (default 2).
#
# Prints executions, exec/s and coverage per target from libFuzzer's final stats. Exits
# non-zero on any crash, OOM or timeout, printing the reproducer's path and hex. Scratch
# files live in a temporary directory, kept on failure ($FUZZ_KEEP=1 keeps it always).
#
# Also for long runs: FUZZ_TARGETS="a b" limits the targets, FUZZ_ARGS adds libFuzzer flags
# (e.g. "-fork=1 -ignore_crashes=1" to keep going past a known crash). See fuzz/README.md.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
FUZZ="$ROOT/fuzz"
RUN_SECONDS="${1:-20}"
JOBS="${FUZZ_JOBS:-2}"
TARGET_DIR="${FUZZ_TARGET_DIR:-$FUZZ/target/stable}"
# (0 would mean "no limit" to libFuzzer.)
[[ "$RUN_SECONDS" =~ ^[1-9][0-9]*$ ]] || { echo "usage: $0 [SECONDS >= 1]" >&2; exit 2; }
read -r -a EXTRA_ARGS <<<"${FUZZ_ARGS:-}"

TRIPLE="$(rustc -vV | sed -n 's/^host: //p')"
export RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares -Cdebug-assertions -Coverflow-checks"
unset CARGO_BUILD_RUSTFLAGS CARGO_ENCODED_RUSTFLAGS
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

# Targets, in Cargo.toml order: the `name` of each [[bin]].
mapfile -t TARGETS < <(awk '/^\[\[bin\]\]/ { bin = 1; next } bin && /^name *=/ { gsub(/^name *= *"|"$/, ""); print; bin = 0 }' "$FUZZ/Cargo.toml")
[[ ${#TARGETS[@]} -gt 0 ]] || { echo "no [[bin]] targets in fuzz/Cargo.toml" >&2; exit 2; }
if [[ -n "${FUZZ_TARGETS:-}" ]]; then
    for t in $FUZZ_TARGETS; do
        [[ " ${TARGETS[*]} " == *" $t "* ]] || { echo "unknown fuzz target '$t' (have: ${TARGETS[*]})" >&2; exit 2; }
    done
    read -r -a TARGETS <<<"$FUZZ_TARGETS"
fi

T0=$SECONDS
echo "fuzz smoke: ${#TARGETS[@]} targets (${TARGETS[*]}), ${RUN_SECONDS}s each, $JOBS at a time"
echo "building into $TARGET_DIR ($TRIPLE, stable coverage passes)"
cargo build --release --manifest-path "$FUZZ/Cargo.toml" --target "$TRIPLE" --target-dir "$TARGET_DIR" </dev/null
BIN="$TARGET_DIR/$TRIPLE/release"
echo "build done (t+$((SECONDS - T0))s)"

WORK="$(mktemp -d "${TMPDIR:-/tmp}/kferry-fuzz-smoke.XXXXXX")"
FAILED=()

show_reproducer() { # file
    echo "  reproducer: $1 ($(wc -c <"$1") bytes)"
    od -An -tx1 -v "$1" | head -16 | sed 's/^/    /'
}

# ---- replay regressions --------------------------------------------------------------------
for t in "${TARGETS[@]}"; do
    dir="$FUZZ/regressions/$t"
    [[ -d "$dir" ]] || continue
    mapfile -t files < <(find "$dir" -type f ! -name '*.md' | sort)
    [[ ${#files[@]} -gt 0 ]] || continue
    for f in "${files[@]}"; do
        if "$BIN/$t" -rss_limit_mb=2048 -timeout=30 "$f" </dev/null >"$WORK/replay-$t-$(basename "$f").log" 2>&1; then
            echo "replay $t/$(basename "$f"): ok"
        else
            echo "replay $t/$(basename "$f"): CRASH (log: $WORK/replay-$t-$(basename "$f").log)"
            grep -m3 -E "panicked at|ERROR: libFuzzer|memory allocation" "$WORK/replay-$t-$(basename "$f").log" | sed 's/^/  /' || true
            show_reproducer "$f"
            FAILED+=("$t (regression $(basename "$f"))")
        fi
    done
done

# ---- short runs ------------------------------------------------------------------------------
run_one() { # target
    local t=$1 dir="$WORK/$1"
    mkdir -p "$dir/corpus" "$dir/artifacts"
    if [[ -d "$FUZZ/corpus/$t" ]]; then
        find "$FUZZ/corpus/$t" -maxdepth 1 -type f -exec cp {} "$dir/corpus/" \;
    fi
    local rc=0
    "$BIN/$t" "$dir/corpus" -max_total_time="$RUN_SECONDS" -rss_limit_mb=2048 -timeout=30 \
        -print_final_stats=1 -artifact_prefix="$dir/artifacts/" "${EXTRA_ARGS[@]}" </dev/null >"$dir/log" 2>&1 || rc=$?
    echo "$rc" >"$dir/rc"
}

running=0
for t in "${TARGETS[@]}"; do
    if ((running >= JOBS)); then
        wait -n || true
        running=$((running - 1))
    fi
    run_one "$t" &
    running=$((running + 1))
done
wait

artifacts_of() { # target dir
    find "$1/artifacts" -type f \( -name 'crash-*' -o -name 'oom-*' -o -name 'timeout-*' -o -name 'leak-*' \) 2>/dev/null | sort
}

# Final stats: "stat::" lines in the default mode; in -fork mode the last "#N: cov: ..." line.
printf '\n%-20s %-6s %12s %8s %7s %8s %8s\n' target result execs exec/s cov ft crashes
for t in "${TARGETS[@]}"; do
    dir="$WORK/$t"
    rc="$(cat "$dir/rc" 2>/dev/null || echo 1)"
    last="$(grep -E '^#[0-9]+:?[[:space:]].*cov: ' "$dir/log" | tail -1 || true)"
    cov="$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")"
    ft="$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")"
    execs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$dir/log" | tail -1)"
    rate="$(sed -n 's/^stat::average_exec_per_sec: *//p' "$dir/log" | tail -1)"
    if [[ -z "$execs" && "$last" =~ ^#([0-9]+):.*\ time:\ ([0-9]+)s ]]; then
        execs="${BASH_REMATCH[1]}"
        rate="$((execs / (BASH_REMATCH[2] > 0 ? BASH_REMATCH[2] : 1)))"
    fi
    mapfile -t artifacts < <(artifacts_of "$dir")
    result=ok
    if [[ "$rc" != 0 || ${#artifacts[@]} -gt 0 ]]; then
        result=FAIL
        FAILED+=("$t")
    fi
    printf '%-20s %-6s %12s %8s %7s %8s %8s\n' "$t" "$result" "${execs:-?}" "${rate:-?}" "${cov:-?}" "${ft:-?}" \
        "${#artifacts[@]}"
done

for t in "${TARGETS[@]}"; do
    dir="$WORK/$t"
    mapfile -t artifacts < <(artifacts_of "$dir")
    [[ "$(cat "$dir/rc" 2>/dev/null || echo 1)" != 0 || ${#artifacts[@]} -gt 0 ]] || continue
    echo
    echo "---- $t failed (exit $(cat "$dir/rc" 2>/dev/null || echo '?'), log: $dir/log)"
    grep -m5 -E "panicked at|ERROR: libFuzzer|memory allocation|out-of-memory|timeout after" "$dir/log" | sed 's/^/  /' || true
    for a in "${artifacts[@]:0:3}"; do
        show_reproducer "$a"
        echo "  replay: $BIN/$t $a"
    done
    [[ ${#artifacts[@]} -le 3 ]] || echo "  ... and $((${#artifacts[@]} - 3)) more in $dir/artifacts"
done

echo
echo "fuzz smoke finished in $((SECONDS - T0))s"
if [[ ${#FAILED[@]} -gt 0 ]]; then
    echo "FAILED: ${FAILED[*]} (scratch kept in $WORK)"
    exit 1
fi
if [[ "${FUZZ_KEEP:-0}" == 1 ]]; then
    echo "scratch kept in $WORK"
else
    rm -rf "$WORK"
fi
