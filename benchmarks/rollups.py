"""Rollup cost benchmark: what keeping per-bucket rollups adds to every segment write.

    python benchmarks/rollups.py [--repeat 200]

Times ``rollups.summarise`` against the whole ``points.segment_fields`` (payload encoding included)
for the segments of one 10,000-reading report as ``ingest.py`` stores it (4 streams x 2,500
readings, one every 4 s on each) and for one full 65,536-point segment at 1 Hz, and prints the
rollup's size beside the payload's. Best and median of 7 rounds.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from iotile_cloud.server import points, rollups  # noqa: E402

READINGS = 10_000


def report_segments() -> list[points.Points]:
    """The segments of one report of ingest.py's raw write: 4 streams, 2,500 readings each."""
    index = np.arange(READINGS, dtype=np.int64) + 7 * READINGS
    batch = points.Points(
        ts=1_800_000_000_000_000 + index * 1_000_000,
        id=index,
        streamer_local_id=index,
        device_timestamp=index,
        int_value=index % 5000,
        value=(index % 5000).astype(np.float64),
        flags=np.full(READINGS, points.STATUS_CODE["cln"] << points.STATUS_SHIFT, dtype=np.uint8),
        stream_pk=np.arange(READINGS) % 4 + 1,
    )
    return [part.in_order() for _, part in points.by_stream(batch)]


def full_segment() -> list[points.Points]:
    """One segment of plot.py's stream: 65,536 points at 1 Hz, a random walk to 3 decimals."""
    n = points.MAX_SEGMENT
    values = np.round(np.cumsum(np.random.default_rng(1).normal(0, 1, n)) + 100, 3)
    ids = np.arange(n, dtype=np.int64)
    zeros = np.zeros(n, dtype=np.int64)
    flags = points.flags_of(False, True, True, False, points.STATUS_CODE["cln"], True)
    return [
        points.Points(
            ts=1_700_000_000_000_000 + ids * 1_000_000,
            id=ids,
            streamer_local_id=ids + 1,
            device_timestamp=zeros,
            int_value=zeros,
            value=values,
            flags=np.full(n, flags, dtype=np.uint8),
            stream_pk=zeros,
        )
    ]


def timed(work: Callable[[], None], repeat: int) -> tuple[float, float]:
    """(best, median) microseconds of ``work`` over 7 rounds of ``repeat`` calls."""
    rounds = []
    for _ in range(7):
        started = time.perf_counter()
        for _ in range(repeat):
            work()
        rounds.append((time.perf_counter() - started) / repeat * 1e6)
    rounds.sort()
    return rounds[0], rounds[3]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=200)
    args = parser.parse_args()
    columns = ("segments", "rollup (µs, best / median)", "segment_fields (µs, best / median)", "share", "bytes")
    print("| " + " | ".join(columns) + " |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for name, segments in (
        ("one 10,000-reading report (4 x 2,500)", report_segments()),
        ("one 65,536-point segment", full_segment()),
    ):

        def rollup_only(segments: list[points.Points] = segments) -> None:
            for part in segments:
                rollups.summarise(part.ts, part.value, part.nulls(points.VALUE_NULL))

        def whole(segments: list[points.Points] = segments) -> None:
            for part in segments:
                points.segment_fields(part)

        repeat = max(1, args.repeat * 10_000 // sum(len(s) for s in segments))
        rollup_best, rollup_median = timed(rollup_only, repeat)
        fields_best, fields_median = timed(whole, repeat)
        stored = [points.segment_fields(part) for part in segments]
        rollup_bytes = sum(len(s["rollup"]) for s in stored)
        payload_bytes = sum(len(s["payload"]) for s in stored)
        print(
            f"| {name} | {rollup_best:.0f} / {rollup_median:.0f} | {fields_best:.0f} / {fields_median:.0f} "
            f"| {rollup_median / fields_median:.0%} | {rollup_bytes:,} rollup / {payload_bytes:,} payload |"
        )


if __name__ == "__main__":
    main()
