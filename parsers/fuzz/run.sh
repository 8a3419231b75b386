#!/usr/bin/env bash
# Run the fuzz targets: seed each corpus from the fixtures, then fuzz each target in turn.
#   bash parsers/fuzz/run.sh [SECONDS] [TARGET...]     (default 60 s each, all nine targets)
# Needs a nightly toolchain and cargo-fuzz (`cargo install cargo-fuzz --locked`).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
fixtures="$here/../../fixtures"
secs="${1:-60}"
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(astm hl7 enzyme-print gold-card spectro lz4000t tl310 dy723pc rows)
cd "$here"
# One process, one fuzzer at a time (no -jobs). No sanitizer: the decoders forbid unsafe code;
# debug assertions turn integer overflow into a finding.
flags=(--sanitizer none --debug-assertions)
cargo +nightly fuzz build "${flags[@]}"
for t in "${targets[@]}"; do
  corpus="corpus/$t"
  mkdir -p "$corpus"
  if [ "$t" = rows ]; then
    cp -n seeds/rows/* "$corpus/"
  else
    cp -n "$fixtures/$t"/*.bin "$corpus/"
  fi
  echo "fuzz: $t for ${secs}s"
  cargo +nightly fuzz run "${flags[@]}" "$t" "$corpus" -- \
    -max_total_time="$secs" -max_len=8192 -timeout=10 -rss_limit_mb=1024 \
    -print_final_stats=1
done
