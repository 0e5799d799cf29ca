"""Fast path for GT masks stored as uncompressed RLE (``counts`` lists), as YTVIS JSONs ship them.

Decoding such a JSON with a generic parser creates one Python ``int`` per run length (tens of
millions for LV-VIS), and ``pycocotools`` then iterates them again to build compressed RLEs. Here:

1. :func:`compact_counts_json` rewrites every ``"counts": [1, 2, ...]`` list of the raw JSON bytes
   into a marker string ``"counts": "#1, 2, ..."`` (regex search of the list heads, one join of
   memoryview slices), so the JSON parser only copies strings instead of creating one ``int``
   object per run. Nothing else changes; files that already contain ``"#`` (where a marker could
   be confused with real data) are parsed unchanged.
2. :func:`encode_marked` turns the marker strings of one video into compressed RLE strings with a
   handful of numpy calls: ``np.fromstring`` parses all numbers, and the pycocotools encoder
   (``rleToString``: deltas against ``counts[i - 2]`` for ``i > 2``, 5-bit chunks, ``0x20``
   continuation, sign from bit ``0x10``, ``+ 48``) runs on all values at once. The strings are
   byte-identical to ``pycocotools.mask.frUncompressedRLE``.

Anything unusual (run lengths >= 2**32, signs, floats such as ``1e3``, invalid JSON lists, sizes
that are not two ints) falls back to the lists decoded by the JSON module (:func:`marked_to_list`),
so the regular code path, including its errors, applies. Invalid JSON inside a list of a GT track
that is never scored is not reported (the lists are decoded lazily, one video at a time).

This is the path without the compiled kernels (:mod:`.ytvis_packed` packs the lists in C instead).
"""

import json
import re
import warnings
from typing import Optional, Sequence

import numpy as np

__all__ = ["MARK", "compact_counts_json", "encode_marked", "marked_to_list"]

MARK = "#"  # never a character of a compressed RLE string (those use chr(48) .. chr(111))
_HEAD_RE = re.compile(rb'"counts"([ \t\n\r]*):([ \t\n\r]*)\[')
_CHUNKS = 7  # 5-bit chunks of a signed 33-bit delta


def compact_counts_json(data: bytes) -> Optional[bytes]:
    """Rewrite ``"counts": [...]`` lists of a raw JSON document into ``"#..."`` strings.

    Only the list heads are searched with a regex; a head whose opening quote is escaped (the
    end of a key such as ``"x\\"counts"``) is skipped, and a list body (up to the first ``]``)
    holding a quote or a backslash is left alone, as such a rewrite could change the document's
    meaning, and so are multi-line lists (``indent=``), where the newline is not allowed in a
    string.
    Everything else (non-integers, invalid JSON) is caught later: a document made invalid by the
    rewrite (e.g. a control character in a list) fails to parse and the caller parses the
    original; unusual list bodies make :func:`encode_marked` fall back to a JSON parse of the
    list, which gives the original values or the original error.

    Args:
        data: the raw JSON bytes.

    Returns:
        The rewritten bytes, or None when the document already contains ``"#`` (no rewrite).
    """
    if b'"#' in data:
        return None
    view, find = memoryview(data), data.find
    chunks, pos = [], 0
    for m in _HEAD_RE.finditer(data):
        start = m.end()
        if start < pos or (m.start() and data[m.start() - 1] == 0x5C):
            continue  # inside a rewritten list / an escaped quote: key ``x"counts``, not ``counts``
        end = data.find(b"]", start)
        if end < 0 or find(b'"', start, end) >= 0 or find(b"\n", start, end) >= 0:
            continue  # could change the document's meaning / not allowed in a string
        if find(b"\\", start, end) >= 0:
            continue
        chunks += [view[pos : start - 1], b'"#', view[start:end], b'"']
        pos = end + 1
    chunks.append(view[pos:])
    return b"".join(chunks)


def marked_to_list(counts: str) -> list:
    """The original ``counts`` list of a marker string (slow path, exact JSON semantics).

    Args:
        counts: ``"#..."`` marker string made by :func:`compact_counts_json`.

    Returns:
        The decoded list.

    Raises:
        ValueError: the list was not valid JSON.
    """
    try:
        return json.loads("[" + counts[1:] + "]")
    except json.JSONDecodeError as e:
        raise ValueError(f"ground truth has a malformed 'counts' list (invalid JSON): {e}") from e


def _leading_zero(text: str) -> bool:
    """Whether a number of the comma-separated text starts with 0 and has more digits."""
    u = np.frombuffer(text.encode("ascii"), dtype=np.uint8)
    digit = (u >= 48) & (u <= 57)
    first = digit & ~np.concatenate([[False], digit[:-1]])
    return bool(np.any(first[:-1] & (u[:-1] == 48) & digit[1:]))


def _parse_ints(text: str) -> Optional[np.ndarray]:
    """Comma-separated non-negative decimal ints of ``text`` (None if anything else is there).

    Signs are refused: ``np.fromstring`` accepts ``+1`` (invalid JSON) and ``-1`` (pycocotools
    refuses negative run lengths), so both must reach the JSON / pycocotools path.
    """
    if not text:
        return np.zeros(0, np.int64)
    if "-" in text or "+" in text:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # malformed text: caught by the callers' count checks
        try:
            values = np.fromstring(text, dtype=np.int64, sep=",")
        except ValueError:
            return None
    return None if _leading_zero(text) else values


def _split_counts(strings: Sequence[str]):
    """All numbers of the marker strings as one int64 array, plus per-string lengths.

    Returns ``(None, None)`` unless every body is a plain list of non-negative ints.
    """
    n = len(strings)
    lengths = np.array([s.count(",") for s in strings], dtype=np.int64) + 1
    text = ",".join(strings)
    if text.count(MARK) == n:  # usual case: no empty list, one marker per string
        values = _parse_ints(text.replace(MARK, ""))
        if values is not None and len(values) == int(lengths.sum()):
            return values, lengths
    lengths = np.array([s.count(",") + 1 if s[1:].strip() else 0 for s in strings], dtype=np.int64)
    bodies = [s[1:] for s in strings if s[1:].strip()]
    values = _parse_ints(",".join(bodies))
    if values is None or len(values) != int(lengths.sum()) or any(MARK in b for b in bodies):
        return None, None  # not plain non-negative integers ("1.5", "null", "1,,2", "01")
    return values, lengths


def encode_marked(strings: Sequence[str], with_totals: bool = False):
    """Compressed RLE ``counts`` (bytes) of marker strings, as ``frUncompressedRLE`` gives.

    Args:
        strings: ``"#..."`` marker strings (see :func:`compact_counts_json`).
        with_totals: also return the sum of the run lengths of each string.

    Returns:
        ``(counts, areas)``: one bytes object and one mask area (sum of the odd-indexed runs)
        per string (plus the run-length totals with ``with_totals``); None when the slow path
        (:func:`marked_to_list`) must be used: run lengths >= 2**32 (which pycocotools
        rejects) or anything but plain non-negative integers, including lists that are not
        valid JSON (``[1,,2]``, ``[01]``).
    """
    n = len(strings)
    if n == 0:
        return ([], [], []) if with_totals else ([], [])
    values, lengths = _split_counts(strings)
    if values is None or (len(values) and int(values.max()) >= 2**32):
        return None
    num = len(values)
    starts = np.cumsum(lengths) - lengths
    pos = np.arange(num) - np.repeat(starts, lengths)  # index inside its mask
    # delta coding: x[i] = c[i] - c[i - 2] for i > 2 (|x| < 2**32 fits int64)
    prev2 = np.empty_like(values)
    prev2[:2] = 0
    prev2[2:] = values[:-2]
    x = values - np.where(pos > 2, prev2, 0)
    # chars per value: the smallest k with -2**(5k-1) <= x < 2**(5k-1) (pycocotools' loop stops
    # once the remaining bits are all sign bits); y = x for x >= 0, ~x for x < 0
    y = x ^ (x >> 63)
    multi = np.nonzero(y >= 16)[0]  # usually few: most run-length deltas fit 5 bits
    nchars = np.ones(num, dtype=np.int64)
    ym = y[multi]
    for k in range(1, _CHUNKS):
        nchars[multi] += ym >= (1 << (5 * k - 1))
    char_end = np.cumsum(nchars)
    first = char_end - nchars
    out = np.empty(int(char_end[-1]) if num else 0, dtype=np.uint8)
    out[first] = (x & 0x1F) + 48
    if len(multi):
        xm, nm, fm = x[multi], nchars[multi], first[multi]
        out[fm] += 32  # continuation bit of the first chunk
        for k in range(1, _CHUNKS):
            sel = np.nonzero(nm > k)[0]
            if len(sel) == 0:
                break
            cont = (nm[sel] > k + 1).astype(np.int64) << 5
            out[fm[sel] + k] = (((xm[sel] >> (5 * k)) & 0x1F) | cont) + 48
    chars = out.tobytes()
    char_end = np.concatenate([[0], char_end])
    begins, ends = char_end[starts], char_end[starts + lengths]
    fg = np.concatenate([[0], np.cumsum(values * (pos & 1))])  # odd-indexed runs are 1s
    areas = (fg[starts + lengths] - fg[starts]).tolist()
    encoded = [chars[a:b] for a, b in zip(begins.tolist(), ends.tolist())]
    if with_totals:
        total = np.concatenate([[0], np.cumsum(values)])
        return encoded, areas, (total[starts + lengths] - total[starts]).tolist()
    return encoded, areas
