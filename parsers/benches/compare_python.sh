#!/usr/bin/env bash
# Rust `astm` decoder vs python-astm (pip package astm-2025) on the same ASTM capture.
#
#   bash parsers/benches/compare_python.sh [PYTHON_MB] [RUST_MB]   (defaults: 5 and 50)
#
# Fairness:
# - Both sides decode the SAME bytes: a synthetic capture (foodgate_parsers::synth, seed 1)
#   from `--example gen_capture`. Python gets the first PYTHON_MB (5 MB, python is slow):
#   with the same seed, a shorter capture is exactly a prefix of the longer one, cut at a
#   transfer boundary. The ratio is computed on that same 5 MB file, decoded by both.
# - Both figures are capture bytes per second (MB = 10^6 bytes), best of several runs, input
#   already in memory, only decoding timed.
# - Rust: `--example decode_file` feeds 64 KiB chunks (as `foodgate parse`), checks every
#   frame's checksum and builds full readings (values, date-times, analytes).
# - Python: frame splitting, per-frame checksum check, ETB-chain joining (`codec.join`, as
#   python-astm's own server does) and `codec.decode_message` are all timed ("pipeline").
#   python-astm only produces lists of field strings, so it does less work than the Rust
#   decoder. The `decode_message`-only figure (splitting excluded) is printed as well.
set -euo pipefail
cd "$(dirname "$0")/../.."

PY_MB=${1:-5}
RUST_MB=${2:-50}
TMP=${TMPDIR:-/tmp}/foodgate-compare
mkdir -p "$TMP"

python3 -c 'import astm.codec' 2>/dev/null || {
    echo "python-astm missing: pip install astm-2025" >&2
    exit 1
}

cargo build --release -q -p foodgate-parsers --example gen_capture --example decode_file
BIN=target/release/examples

"$BIN/gen_capture" astm $((RUST_MB * 1000000)) "$TMP/astm-big.bin"
"$BIN/gen_capture" astm $((PY_MB * 1000000)) "$TMP/astm-small.bin"

echo "== Rust, ${RUST_MB} MB (5 runs)"
"$BIN/decode_file" astm "$TMP/astm-big.bin" 5 | tee "$TMP/rust-big.txt"
echo "== Rust, ${PY_MB} MB, the bytes Python decodes (10 runs)"
"$BIN/decode_file" astm "$TMP/astm-small.bin" 10 | tee "$TMP/rust-small.txt"
echo "== python-astm, ${PY_MB} MB (3 runs)"
python3 parsers/benches/python_astm.py "$TMP/astm-small.bin" --runs 3 | tee "$TMP/python.txt"

rust=$(sed -n 's/^best \([0-9.]*\) MB\/s.*/\1/p' "$TMP/rust-small.txt")
py=$(sed -n 's/^python-astm pipeline:.* MB\/s \([0-9.]*\)$/\1/p' "$TMP/python.txt")
py_dec=$(sed -n 's/^python-astm decode_message only:.* MB\/s \([0-9.]*\)$/\1/p' "$TMP/python.txt")
python3 -c "
rust, py, dec = $rust, $py, $py_dec
print(f'ratio on the same {$PY_MB} MB: Rust {rust:.1f} MB/s / python-astm pipeline {py:.2f} MB/s = {rust / py:.0f}x'
      f' (vs decode_message only {dec:.2f} MB/s: {rust / dec:.0f}x)')
"
rm -rf "$TMP"
