"""A thread-safe least-recently-used cache bounded by the total size of its values, not their count.

Sixteen cached 60-megapixel images are 3 GB; a count bound says nothing about memory. Values larger
than the whole budget are returned but not kept.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

V = TypeVar("V")


class ByteBoundedCache(Generic[V]):
    """key -> value, evicting the least recently used values while their sizes exceed ``max_bytes``.

    ``size_of(value)`` gives a value's size in bytes. ``get_or_make`` computes a missing value outside
    the lock (two threads may compute the same value once each; neither blocks the other).
    """

    def __init__(self, max_bytes: int, size_of: Callable[[V], int]):
        self.max_bytes = max_bytes
        self._size_of = size_of
        self._items: OrderedDict[Hashable, tuple[V, int]] = OrderedDict()
        self._total = 0
        self._lock = threading.Lock()

    @property
    def total_bytes(self) -> int:
        return self._total

    def __len__(self) -> int:
        return len(self._items)

    def get(self, key: Hashable) -> V | None:
        with self._lock:
            item = self._items.get(key)
            if item is None:
                return None
            self._items.move_to_end(key)
            return item[0]

    def put(self, key: Hashable, value: V) -> None:
        size = self._size_of(value)
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self._total -= old[1]
            if size > self.max_bytes:
                return
            self._items[key] = (value, size)
            self._total += size
            while self._total > self.max_bytes:
                _, (_, evicted) = self._items.popitem(last=False)
                self._total -= evicted

    def get_or_make(self, key: Hashable, make: Callable[[], V]) -> V:
        found = self.get(key)
        if found is not None:
            return found
        value = make()
        self.put(key, value)
        return value
