"""A top list kept incrementally: the largest totals, exact for the entries it holds."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from ..detect.digest import top_of


def _rank(item: tuple[bytes, int]) -> tuple[int, bytes]:
    return -item[1], item[0]


@dataclass
class TopList:
    """The largest totals, by count descending then key: exact for its ``len(items)`` entries.

    ``complete`` means it holds every subject. Otherwise every subject not in it ranks after
    its last entry, which is what lets an update need only the subjects it touched.
    """

    size: int
    items: list[tuple[bytes, int]] = field(default_factory=list)
    complete: bool = True

    def update(self, changed: Mapping[bytes, int]) -> None:
        """Take the new totals of the subjects an update changed (0: the subject is gone)."""
        if not changed:
            return
        if self.complete:
            merged = dict(self.items)
            merged.update(changed)
            live = {k: n for k, n in merged.items() if n > 0}
        elif self.items:
            # A subject outside the list may rank anywhere after its last entry, so only what
            # ranks no later than that entry is known to be in place.
            bound = _rank(self.items[-1])
            live = {k: n for k, n in self.items if k not in changed}
            live.update((k, n) for k, n in changed.items() if n > 0 and (-n, k) <= bound)
        else:
            return
        if len(live) > self.size:
            self.complete = False
            self.items = top_of(live, self.size)
        else:
            self.items = sorted(live.items(), key=_rank)

    def short(self, need: int) -> bool:
        """Whether fewer than ``need`` of the top entries are known."""
        return not self.complete and len(self.items) < need
