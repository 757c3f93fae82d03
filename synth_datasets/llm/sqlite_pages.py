"""Read the rows of a damaged SQLite cache file page by page, without SQLite.

SQLite refuses a whole file when its header is wrong (a truncated file whose header still counts the
lost pages, or a header overwritten with garbage), although most of its pages are intact. This reader
walks every page of the file (and of its ``-wal``, newest frame first), decodes the cells of each table
leaf page and keeps the records shaped like a cache row: ``(key TEXT, value TEXT, created REAL|NULL)``
whose value ``accept`` takes. Keys found in index leaf pages (the ``key`` primary-key index) but in no
readable table row tell how many rows are known to be lost. Pages on the freelist (rows deleted by
``cache clear``) are skipped when the header says where the freelist is.

Example:
    >>> import sqlite3, tempfile
    >>> p = tempfile.mkdtemp() + "/c.sqlite"
    >>> with sqlite3.connect(p) as c:
    ...     _ = c.execute("CREATE TABLE responses (key TEXT PRIMARY KEY, value TEXT NOT NULL, created REAL)")
    ...     _ = c.execute("INSERT INTO responses VALUES ('k', '{}', 1.0)")
    >>> scan(p).rows
    {'k': '{}'}
"""

from __future__ import annotations

import dataclasses
import mmap
import os
import struct
from pathlib import Path
from typing import Callable

MAGIC = b"SQLite format 3\x00"
_WAL_MAGIC = (0x377F0682, 0x377F0683)
_TABLE_LEAF, _INDEX_LEAF, _INDEX_INNER = 0x0D, 0x0A, 0x02
_PAGE_TYPES = (0x02, 0x05, 0x0A, 0x0D)


@dataclasses.dataclass
class Scan:
    rows: dict[str, str]     # key -> value (the JSON text), every readable cache row
    index_keys: set[str]     # keys seen in the key index
    lost_keys: set[str]      # keys seen (in the index, or a row with an unreadable value) but not in ``rows``
    page_size: int
    header_ok: bool          # the 100-byte header was readable (page size, freelist)


def _varint(b: bytes, i: int) -> tuple[int, int]:
    v = 0
    for k in range(8):
        c = b[i + k]
        v = (v << 7) | (c & 0x7F)
        if c < 0x80:
            return v, i + k + 1
    return (v << 8) | b[i + 8], i + 9


def _column(b: bytes, i: int, t: int):
    """Value of serial type ``t`` at ``b[i:]`` and its size."""
    if t in (0, 8, 9):
        return {0: None, 8: 0, 9: 1}[t], 0
    if 1 <= t <= 6:
        n = (1, 2, 3, 4, 6, 8)[t - 1]
        return int.from_bytes(b[i:i + n], "big", signed=True), n
    if t == 7:
        return struct.unpack(">d", b[i:i + 8])[0], 8
    if t >= 12:
        n = (t - 12) // 2
        raw = b[i:i + n]
        if len(raw) < n:
            raise ValueError("short record")
        return (raw.decode("utf-8") if t % 2 else raw), n
    raise ValueError(f"bad serial type {t}")


def _record(payload: bytes, columns: int | None = None) -> list:
    """The values of a record (only its first ``columns`` ones if given)."""
    size, i = _varint(payload, 0)
    types = []
    while i < size:
        t, i = _varint(payload, i)
        types.append(t)
    out, j = [], size
    for t in types[:columns]:
        v, n = _column(payload, j, t)
        out.append(v)
        j += n
    return out


def _header(b: bytes) -> tuple[int | None, int, int]:
    """(page size or None, reserved bytes per page, first freelist trunk page) from a database header."""
    if len(b) < 100 or not b.startswith(MAGIC):
        return None, 0, 0
    ps = struct.unpack(">H", b[16:18])[0]
    ps = 65536 if ps == 1 else ps
    if ps < 512 or ps & (ps - 1):
        return None, 0, 0
    return ps, b[20], struct.unpack(">I", b[32:36])[0]


def _guess_page_size(data: bytes) -> int:
    """The page size under which most pages start like a b-tree page (a header that is garbage)."""
    def score(ps: int) -> int:
        n = 0
        for off in range(ps, len(data) - 8, ps):
            t, cells, start = data[off], struct.unpack(">H", data[off + 3:off + 5])[0], data[off + 5:off + 7]
            if t in _PAGE_TYPES and 0 < cells < ps // 4 and (struct.unpack(">H", start)[0] or 65536) <= ps:
                n += 1
        return n
    return max((4096, 1024, 2048, 8192, 16384, 32768, 65536, 512), key=score)


def _wal_pages(path: Path, page_size: int | None) -> dict[int, bytes]:
    """Page number -> newest image in the ``-wal`` beside ``path`` (frames of its current generation)."""
    wal = Path(str(path) + "-wal")
    try:
        data = wal.read_bytes()
    except OSError:
        return {}
    if len(data) < 32 or struct.unpack(">I", data[:4])[0] not in _WAL_MAGIC:
        return {}
    ps = struct.unpack(">I", data[8:12])[0]
    if page_size and ps != page_size:
        return {}
    salts = data[16:24]
    out: dict[int, bytes] = {}
    for off in range(32, len(data) - 24 - ps + 1, 24 + ps):
        if data[off + 8:off + 16] != salts:
            break
        out[struct.unpack(">I", data[off:off + 4])[0]] = data[off + 24:off + 24 + ps]
    return out


def scan(path: str | os.PathLike, *, accept: Callable[[str], bool] = lambda v: True) -> Scan:
    """Every readable cache row of the SQLite file at ``path`` (see the module docstring)."""
    path = Path(path)
    with open(path, "rb") as f:
        try:
            data = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)  # not read into memory at once
        except ValueError:  # an empty file
            data = b""
    try:
        return _scan(path, data, accept)
    finally:
        if isinstance(data, mmap.mmap):
            data.close()


def _scan(path: Path, data, accept: Callable[[str], bool]) -> Scan:
    ps, reserved, trunk = _header(data[:100])
    header_ok = ps is not None
    ps = ps or _guess_page_size(data)
    wal = _wal_pages(path, ps)
    if 1 in wal:  # a newer header (freelist) in the WAL
        ps1, reserved1, trunk1 = _header(wal[1][:100])
        if ps1 == ps:
            reserved, trunk, header_ok = reserved1, trunk1, True
    usable = ps - reserved
    npages = max(len(data) // ps, max(wal, default=0))

    def page(n: int) -> bytes | None:
        if n in wal:
            return wal[n]
        if 1 <= n and n * ps <= len(data):
            return data[(n - 1) * ps:n * ps]
        return None

    free: set[int] = set()
    while trunk and trunk not in free and (p := page(trunk)) is not None:  # the freelist: deleted rows
        free.add(trunk)
        count = min(struct.unpack(">I", p[4:8])[0], (usable - 8) // 4)
        free.update(struct.unpack(f">{count}I", p[8:8 + 4 * count]))
        trunk = struct.unpack(">I", p[:4])[0]

    def payload(p: bytes, i: int, size: int, max_local: int, min_local: int) -> bytes:
        if size <= max_local:
            return p[i:i + size]
        k = min_local + (size - min_local) % (usable - 4)
        local = k if k <= max_local else min_local
        parts, nxt, seen = [p[i:i + local]], struct.unpack(">I", p[i + local:i + local + 4])[0], set()
        got = local
        while got < size:
            o = page(nxt) if nxt not in seen else None
            if o is None:
                raise ValueError("overflow page missing")
            seen.add(nxt)
            take = min(size - got, usable - 4)
            parts.append(o[4:4 + take])
            got += take
            nxt = struct.unpack(">I", o[:4])[0]
        return b"".join(parts)

    rows: dict[str, str] = {}
    index_keys: set[str] = set()
    broken_keys: set[str] = set()
    table_max, table_min = usable - 35, (usable - 12) * 32 // 255 - 23
    index_max = (usable - 12) * 64 // 255 - 23
    order = sorted(wal) + [n for n in range(1, npages + 1) if n not in wal]  # newest images first
    for n in order:
        if n in free:
            continue
        p = page(n)
        off = 100 if n == 1 else 0
        if p is None or len(p) < off + 12 or p[off] not in (_TABLE_LEAF, _INDEX_LEAF, _INDEX_INNER):
            continue
        kind = p[off]
        head = off + (12 if kind == _INDEX_INNER else 8)
        cells = struct.unpack(">H", p[off + 3:off + 5])[0]
        for c in range(min(cells, (ps - head) // 2)):
            try:
                i = struct.unpack(">H", p[head + 2 * c:head + 2 + 2 * c])[0]
                size, i = _varint(p, i + (4 if kind == _INDEX_INNER else 0))
                if kind == _TABLE_LEAF:
                    _, i = _varint(p, i)  # rowid
                    try:
                        rec = _record(payload(p, i, size, table_max, table_min))
                    except (ValueError, IndexError, struct.error):
                        first = _record(p[i:i + min(size, table_min)], 1)
                        if first and isinstance(first[0], str):
                            broken_keys.add(first[0])
                        continue
                    if (len(rec) == 3 and isinstance(rec[0], str) and isinstance(rec[1], str)
                            and (rec[2] is None or isinstance(rec[2], (int, float))) and rec[0] not in rows
                            and accept(rec[1])):
                        rows[rec[0]] = rec[1]
                else:
                    rec = _record(payload(p, i, size, index_max, table_min))
                    if len(rec) == 2 and isinstance(rec[0], str) and isinstance(rec[1], int):
                        index_keys.add(rec[0])
            except (ValueError, IndexError, struct.error, UnicodeDecodeError):
                continue
    lost = (index_keys | broken_keys) - set(rows)
    return Scan(rows=rows, index_keys=index_keys, lost_keys=lost, page_size=ps, header_ok=header_ok)
