#!/usr/bin/env bash
# Builds the libFuzzer targets (clang, ASan + UBSan) and runs each for a bounded time from a seed
# corpus made of the repository's own samples and vectors. Any crash, leak, sanitizer report,
# timeout (an input that runs longer than FUZZ_INPUT_TIMEOUT seconds) or abort fails the run; the
# reproducer is left in $BUILD/artifacts/.
#
#   scripts/fuzz.sh [BUILD_DIR]        FUZZ_SECONDS=60 (token, Datalog), FUZZ_SECONDS_LOG=30 (log, checkpoint)
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build-fuzz}
SECONDS_CAPS=${FUZZ_SECONDS:-60}
SECONDS_LOG=${FUZZ_SECONDS_LOG:-30}
TIMEOUT=${FUZZ_INPUT_TIMEOUT:-10}
TARGETS=(token_fuzz datalog_parser_fuzz log_reader_fuzz checkpoint_fuzz)

launcher=()
command -v ccache >/dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DCMAKE_C_COMPILER_LAUNCHER=ccache)
CC=clang CXX=clang++ cmake -S . -B "$BUILD" -G Ninja -DCUSTOS_FUZZ=ON -DCMAKE_BUILD_TYPE=Debug \
  "${launcher[@]}" >/dev/null
cmake --build "$BUILD" -j "$(nproc)" --target "${TARGETS[@]}"

rm -rf "$BUILD/corpus" && mkdir -p "$BUILD/artifacts"
/usr/bin/python3 fuzz/make_corpus.py . "$BUILD/corpus"

for t in "${TARGETS[@]}"; do
  secs=$SECONDS_CAPS
  [[ $t == log_reader_fuzz || $t == checkpoint_fuzz ]] && secs=$SECONDS_LOG
  mkdir -p "$BUILD/corpus/$t"
  echo "fuzz: $t for ${secs}s (seeds: $(ls "$BUILD/corpus/$t" | wc -l))"
  # -jobs/-workers stay at 1: CI has two cores and the other one builds or runs tests.
  if ! "$BUILD/$t" "$BUILD/corpus/$t" -max_total_time="$secs" -timeout="$TIMEOUT" \
      -rss_limit_mb=2048 -max_len=65536 -print_final_stats=1 \
      -artifact_prefix="$BUILD/artifacts/$t-" >"$BUILD/$t.log" 2>&1; then
    tail -n 60 "$BUILD/$t.log"
    echo "fuzz: $t FAILED; reproducer in $BUILD/artifacts/" >&2
    exit 1
  fi
  grep -E "stat::number_of_executed_units|cov:" "$BUILD/$t.log" | tail -n 2
done
echo "fuzz: all targets ran clean"
