"""Answering "certainly not stored" without a query."""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from judge.store.db import Database


class HashFilter:
    """Strings that may be stored (request hashes in the cache, item ids in a dataset): a
    Bloom filter of 16 bits per entry of its capacity (rounded up to a power of two).

    A set of every hash would cost about 150 bytes an entry and grow with every call a
    long-lived store makes. The filter answers "certainly not cached" with no query for every
    new request, and "maybe" for cached ones and for about one new request in 1,400 when full
    (16 bits an entry, 7 probes; it is read at twice the stored entries, where it is one in
    90,000), which the store then looks up and finds missing. Request hashes are SHA-256 hex
    digests, so their own bytes are the filter's positions; any other string is hashed first.

    >>> seen = HashFilter(capacity=1000)
    >>> seen.add("ab" * 32)
    >>> "ab" * 32 in seen, "cd" * 32 in seen
    (True, False)
    """

    PROBES = 7
    BITS_PER_ENTRY = 16

    def __init__(self, capacity: int = 1 << 16) -> None:
        self.capacity = max(1 << 16, capacity)
        bits = 1 << (self.capacity * self.BITS_PER_ENTRY - 1).bit_length()
        self.mask = bits - 1
        self.array = bytearray(bits // 8)
        self.count = 0

    def _positions(self, request_hash: str) -> list[int]:
        try:
            digest = bytes.fromhex(request_hash)
        except ValueError:
            digest = b""
        if len(digest) < 4 * self.PROBES:
            digest = hashlib.sha256(request_hash.encode()).digest()
        mask = self.mask
        return [
            int.from_bytes(digest[4 * k : 4 * k + 4], "little") & mask for k in range(self.PROBES)
        ]

    def add(self, request_hash: str) -> None:
        array = self.array
        for position in self._positions(request_hash):
            array[position >> 3] |= 1 << (position & 7)
        self.count += 1

    def __contains__(self, request_hash: object) -> bool:
        if not isinstance(request_hash, str):
            return False
        array = self.array
        return all(array[p >> 3] & (1 << (p & 7)) for p in self._positions(request_hash))

    @property
    def full(self) -> bool:
        return self.count > self.capacity

    @classmethod
    def of_rows(
        cls, db: Database, column: str, where: str, params: list[Any], at_least: int = 0
    ) -> HashFilter:
        """A filter of ``column`` in the rows ``where`` selects (``FROM table WHERE ...``),
        sized for twice their number (or ``at_least``) and read 50,000 rows at a time, never
        all at once. On ``db``'s connection, so rows of its open transaction count."""
        stored = db.one(f"SELECT count(*) {where}", params)
        seen = cls(capacity=2 * max(at_least, stored[0] if stored else 0))
        result = db.con.execute(f"SELECT {column} {where}", params)
        while rows := result.fetchmany(50_000):
            for (value,) in rows:
                seen.add(value)
        return seen
