#!/usr/bin/env python3
"""Decode an ASTM E1381 capture with python-astm (`pip install astm-2025`) and print MB/s.

    python3 python_astm.py CAPTURE [--runs N]

CAPTURE is a file written by `cargo run --release -p foodgate-parsers --example gen_capture
-- astm BYTES FILE` (ENQ, frames of <= 240 text bytes chained with ETB, EOT).

python-astm's `codec.decode_message` takes ONE framed message, `STX FN text ETX C1 C2 CR LF`;
its own server (astm/server.py) collects ETB chunks and merges them with `codec.join`
before decoding. This script does the same:

  pipeline  (the headline figure): scan the capture for frames with bytes.find, check every
            ETB frame's checksum (decode_message only checks the joined one, the Rust
            decoder checks every frame), join ETB chains with `codec.join`, then
            `codec.decode_message(msg, "latin-1")`. Everything from the raw capture bytes to
            the decoded records is timed, as in the Rust figure.
  decode    `decode_message` alone on messages split and joined beforehand (splitting
            excluded from the timing): an upper bound for python-astm.

Both are reported as capture bytes per second (MB = 10^6 bytes), the same basis as
`decode_file`. python-astm stops at lists of field strings; the Rust decoder also parses
values, date-times and analyte codes into readings, so the comparison favours Python.
The best of N runs is reported (N=3 by default).
"""

import sys
import time

import astm.codec as codec

STX, ETX, ETB = b"\x02", b"\x03", b"\x17"


def split_messages(data, check=True):
    """Frames -> whole messages (ETB chains joined). Returns (messages, bad_checksums)."""
    messages = []
    chunks = []
    bad = 0
    find = data.find
    i = find(STX)
    while i != -1:
        etx = find(ETX, i)
        etb = find(ETB, i)
        if etx == -1 and etb == -1:
            break
        end = etx if etb == -1 or (etx != -1 and etx < etb) else etb
        frame = data[i:end + 5]
        if end == etb:
            if check and codec.make_checksum(data[i + 1:end + 1]) != data[end + 1:end + 3]:
                bad += 1
            chunks.append(frame)
        elif chunks:
            chunks.append(frame)
            messages.append(codec.join(chunks))
            chunks = []
        else:
            messages.append(frame)
        i = find(STX, end + 5)
    return messages, bad


def count_results(records_per_message):
    return sum(1 for records in records_per_message for r in records if r and r[0] == "R")


def pipeline(data):
    messages, bad = split_messages(data)
    decode = codec.decode_message
    decoded = [decode(m, "latin-1")[1] for m in messages]
    return len(messages), count_results(decoded), bad


def decode_only(messages):
    decode = codec.decode_message
    return [decode(m, "latin-1")[1] for m in messages]


def main():
    args = sys.argv[1:]
    if not args:
        sys.exit(__doc__)
    runs = 3
    if "--runs" in args:
        k = args.index("--runs")
        runs = int(args[k + 1])
        del args[k:k + 2]
    with open(args[0], "rb") as f:
        data = f.read()
    mb = len(data) / 1e6

    best = None
    for _ in range(runs):
        t = time.perf_counter()
        n_msgs, n_results, bad = pipeline(data)
        dt = time.perf_counter() - t
        best = dt if best is None else min(best, dt)
    print(f"python-astm pipeline: bytes {len(data)} messages {n_msgs} results {n_results} "
          f"bad_checksums {bad} seconds {best:.3f} MB/s {mb / best:.2f}")

    messages, _ = split_messages(data, check=False)
    best_d = None
    for _ in range(runs):
        t = time.perf_counter()
        decode_only(messages)
        dt = time.perf_counter() - t
        best_d = dt if best_d is None else min(best_d, dt)
    print(f"python-astm decode_message only: seconds {best_d:.3f} MB/s {mb / best_d:.2f}")


if __name__ == "__main__":
    main()
