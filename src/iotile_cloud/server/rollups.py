"""Per-bucket rollups of the point store's segments, and the time-bucket grids the plot feed fills.

Each segment carries, beside its payload, a small ``rollup`` blob: its points reduced to fixed,
time-aligned buckets of one level (1 minute, 1 hour or 1 day; a bucket of level ``L`` starts at
``ts - ts % L``, in UTC microseconds), one entry per non-empty bucket: the bucket's number
(``ts // L``), its first timestamp, the minimum and maximum value (valued points only; NaN when all
are null) and the point count. :func:`summarise` computes it whenever a segment is written, so it
always matches the payload. A grid whose bucket size is a multiple of the level, and whose first
bucket is aligned to it, is filled from those entries alone: first time, min, max and count combine
exactly, so a plot of a long range reads about 40 bytes a minute of data instead of decoding every
point. ``docs/storage.md`` explains the choices.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

MINUTE_US = 60_000_000
# Each level is a multiple of the ones before: a grid aligned to a level is aligned to the finer ones.
LEVELS = (MINUTE_US, 60 * MINUTE_US, 1440 * MINUTE_US)
# A segment keeps the finest level that has at most 1/8 as many buckets as it has points (coarser
# levels would only make a read combine fewer entries, not fetch fewer bytes: the blob is read whole
# and its finest level dominates it). A sparser segment keeps none and is decoded when plotted.
REDUCTION = 8
SCAN = 2  # a level is searched only when it spans at most 1/SCAN as many buckets as there are points
# A grid snaps to the coarsest level that costs it at most a fifth of its buckets.
SNAP_SLACK = 1.25
FETCH = 512  # segment rollups read in one query

# The blob: a 24-byte header (magic, whether the bucket numbers are consecutive, bucket count n,
# level in µs (0: none kept), first bucket number), then the columns, the widest first so that each
# starts aligned: the minima then the maxima (2n f64), the first timestamps as offsets into their
# buckets (n u32; i64 for days), the counts (n u32), the steps between bucket numbers (n - 1 u32,
# left out when consecutive). 24 bytes a bucket (28 with steps).
MAGIC = b"R1"
_HEADER = struct.Struct("<2sBxIqq")
_COLUMNS = ("index", "first", "low", "high", "count")


@dataclass(frozen=True)
class Buckets:
    """Aggregates per bucket: its key, first timestamp, min and max value (NaN: no value), count."""

    index: np.ndarray
    first: np.ndarray
    low: np.ndarray
    high: np.ndarray
    count: np.ndarray

    def __len__(self) -> int:
        return len(self.index)

    @classmethod
    def concat(cls, parts: Sequence[Buckets]) -> Buckets:
        if len(parts) == 1:
            return parts[0]
        if not parts:
            ints = np.zeros(0, dtype=np.int64)
            return cls(ints, ints, np.zeros(0), np.zeros(0), ints)
        return cls(*(np.concatenate([getattr(p, name) for p in parts]) for name in _COLUMNS))


_START = np.zeros(1, dtype=np.intp)


def combine(
    keys: np.ndarray, first: np.ndarray, low: np.ndarray, high: np.ndarray, count: np.ndarray | None
) -> Buckets:
    """Combine entries with equal ``keys`` (``count=None``: each entry is one point). Few numpy
    calls on purpose: this runs on every segment write."""
    if not len(keys):
        return Buckets.concat([])
    step = np.diff(keys)
    if (step < 0).any():  # stored segments are in time order; grids combine several segments
        order = np.argsort(keys, kind="stable")
        keys, first, low, high = keys[order], first[order], low[order], high[order]
        count = None if count is None else count[order]
        step = np.diff(keys)
    starts = np.flatnonzero(step)
    starts += 1
    starts = np.concatenate((_START, starts))
    return Buckets(
        keys[starts],
        np.minimum.reduceat(first, starts),
        np.fmin.reduceat(low, starts),  # fmin/fmax skip NaN (null values): NaN only when all are
        np.fmax.reduceat(high, starts),
        np.diff(starts, append=len(keys)) if count is None else np.add.reduceat(count, starts),
    )


def _with_nan(values: np.ndarray, value_null: np.ndarray) -> np.ndarray:
    return np.where(value_null, np.nan, values) if value_null.any() else values


def summarise(ts: np.ndarray, values: np.ndarray, value_null: np.ndarray) -> bytes:
    """The rollup blob of one segment's points (``value_null``: the points without a value), which
    are in time order as every segment is stored (the reads rely on it too). Bucket boundaries are
    found by binary search, so the cost is a few numpy calls plus two passes over the values."""
    n = len(ts)
    for level in LEVELS:
        if not n:
            break
        low_key, high_key = int(ts[0]) // level, int(ts[-1]) // level
        spanned = high_key - low_key + 1
        if spanned * SCAN > n:
            continue  # sparse at this level: searching every bucket would cost more than it saves
        keys = np.arange(low_key, high_key + 2)  # and the end of the last bucket
        bounds = ts.searchsorted(keys * level)
        starts, counts, keys = bounds[:-1], bounds[1:] - bounds[:-1], keys[:-1]
        used = counts > 0
        if not used.all():  # empty buckets (gaps) are left out
            starts, counts, keys = starts[used], counts[used], keys[used]
        if len(keys) * REDUCTION > n:
            continue
        if value_null.any():
            values = np.where(value_null, np.nan, values)
            lows, highs = np.fmin.reduceat(values, starts), np.fmax.reduceat(values, starts)
        else:
            lows, highs = np.minimum.reduceat(values, starts), np.maximum.reduceat(values, starts)
        first_key, n_keys = int(keys[0]), len(keys)
        consecutive = int(keys[-1]) - first_key == n_keys - 1
        return b"".join(
            (
                _HEADER.pack(MAGIC, consecutive, n_keys, level, first_key),
                np.concatenate((lows, highs)).astype("<f8", copy=False).tobytes(),
                (ts[starts] - keys * level).astype(_offsets(level)).tobytes(),
                counts.astype("<u4").tobytes(),
                b"" if consecutive else np.diff(keys).astype("<u4").tobytes(),
            )
        )
    return _HEADER.pack(MAGIC, True, 0, 0, 0)


def _offsets(level: int) -> str:
    return "<u4" if level < 1 << 32 else "<i8"


def read(blob: bytes) -> tuple[int, Buckets] | None:
    """A rollup blob's level and entries, or None when the segment keeps no level."""
    magic, consecutive, n, level, first_key = _HEADER.unpack_from(blob)
    if magic != MAGIC:
        raise ValueError("not a segment rollup")
    if not level:
        return None
    at = _HEADER.size

    def column(dtype: str, count: int) -> np.ndarray:
        nonlocal at
        values = np.frombuffer(blob, dtype=dtype, count=count, offset=at)
        at += values.nbytes
        return values

    bounds = column("<f8", 2 * n).astype(np.float64, copy=False)
    offsets = column(_offsets(level), n)
    counts = column("<u4", n).astype(np.int64)
    if consecutive:
        index = np.arange(first_key, first_key + n, dtype=np.int64)
    else:
        index = np.concatenate(([0], np.cumsum(column("<u4", n - 1), dtype=np.int64))) + first_key
    return level, Buckets(index, offsets + index * level, bounds[:n], bounds[n:], counts)


def snap(first: int, last: int, width: int) -> tuple[int, int] | None:
    """A grid of at most ``width`` buckets over ``first..last`` that rollups can fill: (grid start,
    bucket size), the size a multiple of a level and the start a multiple of the size. The level
    is the coarsest that keeps at least 4/5 of the wanted buckets (a segment that keeps a coarse
    level, being sparse, then fits too), else the finest; None when the wanted buckets are finer
    than the finest level."""
    wanted = max(1, -(-(last - first + 1) // width))
    if wanted < LEVELS[0]:
        return None
    level = next(
        (coarse for coarse in reversed(LEVELS) if -(-wanted // coarse) * coarse <= SNAP_SLACK * wanted),
        LEVELS[0],
    )
    size = -(-wanted // level) * level
    while True:
        start = first - first % size
        if (last - start) // size < width:
            return start, size
        size += level


class Grid:
    """``width`` time buckets of ``size`` µs from ``first``, filled from points or from rollup entries."""

    def __init__(self, first: int, size: int, width: int) -> None:
        self.first, self.size, self.width = first, size, width
        self.times = np.full(width, np.iinfo(np.int64).max, dtype=np.int64)
        self.lows, self.highs = np.full(width, np.nan), np.full(width, np.nan)
        self.counts = np.zeros(width, dtype=np.int64)

    def _position(self, ts: np.ndarray) -> np.ndarray:
        return np.clip((ts - self.first) // self.size, 0, self.width - 1)

    def _merge(self, found: Buckets) -> None:
        at = found.index  # distinct positions: plain fancy indexing combines
        self.times[at] = np.minimum(self.times[at], found.first)
        self.lows[at] = np.fmin(self.lows[at], found.low)
        self.highs[at] = np.fmax(self.highs[at], found.high)
        self.counts[at] += found.count

    def add_points(self, ts: np.ndarray, values: np.ndarray, value_null: np.ndarray) -> None:
        values = _with_nan(values, value_null)
        self._merge(combine(self._position(ts), ts, values, values, None))

    def fits(self, level: int) -> bool:
        """Whether every bucket of ``level`` lies wholly inside one bucket of the grid."""
        return self.size % level == 0 and self.first % level == 0

    def add_rollups(self, starts: np.ndarray, entries: Buckets) -> None:
        """Rollup entries whose buckets start at ``starts`` (of levels that :meth:`fits`)."""
        self._merge(combine(self._position(starts), entries.first, entries.low, entries.high, entries.count))

    def result(self) -> tuple[np.ndarray, ...]:
        """Per non-empty bucket: its position, first time, min, max (NaN: no value) and count."""
        used = np.flatnonzero(self.counts)
        return used, self.times[used], self.lows[used], self.highs[used], self.counts[used]
