"""The mapper: one Split -> one Partial. Runs in the worker processes.

Bytes are read in bounded blocks; a line longer than ``MAX_LINE`` is streamed through and only
its first bytes are kept, so a 2 GB line costs no more memory than a short one.
"""

from __future__ import annotations

import gc
import io
import itertools
import zlib
from collections import Counter
from collections.abc import Callable, Collection

from ..model.partial import MAX_EXAMPLES, Partial, Segment, Timeline
from ..settings import Settings, limits
from . import fast, storage, zones
from . import kernel as native
from .parse import (
    ERROR_LEVELS,
    EXAMPLE_BYTES,
    LEVELS,
    MAX_LINE,
    NS,
    Malformed,
    Record,
    example_text,
    parse_line,
)
from .split import Split

BLOCK = 1 << 20
"""Bytes read at a time; with the carried partial line this bounds a worker's buffers."""

READ_ERRORS = (OSError, EOFError, zlib.error)



def map_split(
    split: Split,
    settings: Settings,
    flush: Callable[[Partial], None] | None = None,
    flush_bytes: int = 0,
    tokens: Collection[bytes] | None = None,
    trim: bool = True,
    future_lines: bool = False,
    columns: bool = False,
) -> Partial:
    """Count every line that starts in ``split``. A read error is recorded, not raised.

    With ``flush``, it is called on the Partial so far after every ``flush_bytes`` read, to take
    its (subject, window) counters away (a split that is a whole compressed file can be far
    larger than a chunk). With ``trim`` the unknown level tokens are then cut, there and at the
    end, to ``tokens``, or by default to the split's first ``limits().unknown_levels``: the only ones
    that can be reported unless an earlier file reports another (``pipeline`` counts those again
    with ``tokens``). With ``future_lines`` the segment lists every future-stamped line. With
    ``columns`` the compiled kernel, where it runs, hands its (subject, window) counts over as
    ``Partial.runs`` (cheaper to write to the spill folder than dicts)."""
    scanner = scanner_for(split, settings, columns)
    if future_lines:
        scanner.segment.future_lines = []
    if flush is not None:
        scanner.flush, scanner.flush_bytes = flush, max(1, flush_bytes)
        scanner.trim, scanner.tokens = trim, tokens
    # Counting makes millions of small acyclic objects; cycle collection would only rescan them.
    collecting = gc.isenabled()
    gc.disable()
    try:
        with _open(split) as f:
            scanner.read_all(f)
    except READ_ERRORS as err:
        scanner.partial.failures[split.path] = _describe(err)
        scanner.drop_fragment()
    finally:
        if collecting:
            gc.enable()
    partial = scanner.finish()
    if scanner.trim:
        partial.retain_unknown(scanner.kept_tokens())
    return partial


def _open(split: Split) -> io.BufferedIOBase:
    if split.data is not None:
        return io.BytesIO(split.data)
    if split.compressed:
        return storage.open_gzip(split.path)
    return storage.open_at(split.path, split.start)


def _describe(err: BaseException) -> str:
    if isinstance(err, OSError) and err.strerror:
        return err.strerror
    return str(err) or type(err).__name__


class Scanner:
    """Accumulates the lines of one split into a Partial and its single Segment."""

    def __init__(self, split: Split, settings: Settings) -> None:
        self.split = split
        self.settings = settings
        self.partial = Partial(clock_skew_ns=settings.clock_skew_ns)
        self.segment = Segment(start=split.start, end=split.start)
        self.partial.segments[(split.path, split.generation)] = [self.segment]
        """In the partial from the start, so that a ``flush`` sees its examples."""
        self.future_after = split.mtime_ns + settings.clock_skew_ns
        self.window_ns = settings.window * NS
        self.skew_ns = settings.clock_skew_ns
        self.hour_start: dict[bytes, int] = {}
        self.local_hour = zones.local_hour(settings.tz)
        """--tz: the local hour of a UTC second; None for UTC (the hour of the second)."""
        self.since, self.until = settings.since_ns, settings.until_ns
        self.ranged = self.since is not None or self.until is not None
        """--since / --until: valid lines outside [since, until) only count in lines and outside."""
        self.read = 0
        self.carry = b""
        self.long_prefix: bytes | None = None
        self.long_blank = True
        self.flush: Callable[[Partial], None] | None = None
        self.flush_bytes = self.flushed = 0
        self.trim = False
        self.tokens: Collection[bytes] | None = None
        self.window_errors: Counter[int] = Counter()
        """window index -> ERROR, CRITICAL and FATAL lines, for the timeline made at the end."""

    def read_all(self, f: io.BufferedIOBase) -> None:
        remaining = -1 if self.split.end is None else self.split.end - self.split.start
        # A compressed file is read as it is decompressed (read1), so that a read error part
        # way (a truncated .gz) loses no line decompressed before it.
        read = f.read1 if self.split.compressed else f.read
        while remaining:
            data = read(BLOCK if remaining < 0 else min(BLOCK, remaining))
            if not data:
                break
            self.read += len(data)
            if remaining > 0:
                remaining -= len(data)
            self.feed(data)
            if self.flush is not None and self.read - self.flushed >= self.flush_bytes:
                self._flush(self.flush)

    def _flush(self, flush: Callable[[Partial], None]) -> None:
        self.flushed = self.read
        flush(self.partial)
        if self.trim:
            keep = self.kept_tokens()
            p, seg = self.partial, self.segment
            p.retain_unknown(keep)
            seg.unknown_examples = {t: e for t, e in seg.unknown_examples.items() if t in keep}

    def kept_tokens(self) -> Collection[bytes]:
        """The unknown level tokens a trimmed split keeps: ``tokens``, or its first
        ``limits().unknown_levels`` in order of first appearance (the counter keeps that order)."""
        if self.tokens is not None:
            return self.tokens
        return set(itertools.islice(self.partial.unknown_levels, limits().unknown_levels))

    def drop_fragment(self) -> None:
        """Forget a line cut short by a read error: it is not the file's last line."""
        self.carry = b""
        self.long_prefix = None

    def finish(self) -> Partial:
        """Count the unterminated last line, if any, and seal the partial."""
        if self.long_prefix is not None:
            self._end_long_line()
        elif self.carry:
            self.line(self.carry)
            self.carry = b""
        p = self.partial
        p.timeline = Timeline.of(self.settings.window, p.window_lines, self.window_errors)
        if self.split.data is not None and self.split.end is not None:
            # A split of standard input holds a stand-in for any long line: it counts what it
            # stands for.
            self.read = self.split.end - self.split.start
        p.bytes_read = self.read
        self.segment.end = self.split.start + self.read
        p.segments[(self.split.path, self.split.generation)] = [self.segment]
        if self.split.start == 0 and self.split.path not in p.failures:
            p.files = 1
        return p

    def feed(self, data: bytes) -> None:
        if self.long_prefix is not None:
            nl = data.find(b"\n")
            if nl < 0:
                self.long_blank = self.long_blank and data.isspace()
                return
            self.long_blank = self.long_blank and (nl == 0 or data[:nl].isspace())
            self._end_long_line()
            self.segment.newlines += 1
            data = data[nl + 1 :]
        buf = self.carry + data if self.carry else data
        last = buf.rfind(b"\n")
        if last < 0:
            self.carry = buf
        else:
            self.lines(buf, last + 1)
            self.carry = buf[last + 1 :]
        if len(self.carry) > MAX_LINE:
            self.long_prefix = self.carry[:EXAMPLE_BYTES]
            self.long_blank = self.carry.isspace()
            self.carry = b""

    def _end_long_line(self) -> None:
        assert self.long_prefix is not None
        if self.long_blank:
            self.partial.lines += 1
            self.partial.blank += 1
        else:
            self.malformed(Malformed("too_long"), self.long_prefix)
        self.long_prefix = None

    def lines(self, buf: bytes, end: int) -> None:
        """Every complete line of ``buf[:end]`` (which ends with a newline)."""
        block = buf[:end] if end < len(buf) else buf
        if not self.fast_lines(block):
            self.slow_lines(block.split(b"\n"))

    def slow_lines(self, lines: list[bytes]) -> None:
        """The exact path: one line at a time (``lines`` ends with the empty tail after ``\n``)."""
        for line in lines[:-1]:
            self.line(line)
            self.segment.newlines += 1

    def fast_lines(self, block: bytes) -> bool:
        """Count a block of complete lines without a Python step per line, where it can.

        Canonical lines (see ``fast.CANONICAL``) are counted in bulk; the others go through
        ``parse_line`` one by one. Returns False, having counted nothing, when the block needs
        the exact path throughout: a line over MAX_LINE bytes, or a valid non-canonical line
        (whose timestamp would have to be ordered among the canonical ones).
        """
        if not fast.all_lines_short(block):
            return False
        heads = fast.CANONICAL.findall(block)
        odd = fast.positions_of_empty(heads)
        lines: list[bytes] | None = None
        parsed: list[tuple[int, Malformed | None]] = []
        if odd:
            lines = block.split(b"\n")
            for i in odd:
                result = parse_line(lines[i])
                if isinstance(result, Record):
                    self.slow_lines(lines)
                    return True
                parsed.append((i, result))
            heads = list(filter(None, heads))
        inside: bool | None = True
        if self.ranged and heads:
            inside = self.heads_inside(heads)
            if inside is None:
                self.slow_lines(lines if lines is not None else block.split(b"\n"))
                return True
        base = self.segment.newlines
        p = self.partial
        for i, result in parsed:
            self.segment.newlines = base + i
            if result is None:
                p.lines += 1
                p.blank += 1
            else:
                assert lines is not None
                self.malformed(result, lines[i])
        count = len(heads)
        self.segment.newlines = base
        if count and inside:
            self.canonical(heads, odd, block, lines)
        elif count:
            p.outside += count
        p.lines += count
        self.segment.newlines = base + count + len(odd)
        return True

    def heads_inside(self, heads: list[bytes]) -> bool | None:
        """Whether every canonical line (True) or none (False) is inside [since, until); None
        when some are and some are not (the block then takes the exact path). A head starts
        with its fixed-width UTC stamp, so the least head has the earliest stamp."""
        low = fast.stamp_seconds(min(heads)[:20]) * NS
        high = fast.stamp_seconds(max(heads)[:20]) * NS
        since, until = self.since, self.until
        if (since is None or low >= since) and (until is None or high < until):
            return True
        if (since is not None and high < since) or (until is not None and low >= until):
            return False
        return None

    def canonical(
        self, heads: list[bytes], odd: list[int], block: bytes, lines: list[bytes] | None
    ) -> None:
        """Bulk counts of canonical lines; ``segment.newlines`` is the block's first line."""
        p, settings = self.partial, self.settings
        fields = b" ".join(heads).split(b" ")
        stamps, levels, services, users = fields[0::4], fields[1::4], fields[2::4], fields[3::4]
        p.valid += len(heads)
        p.users.update(users)
        seconds: dict[bytes, int] = {}
        windows: dict[bytes, int] = {}
        width = settings.window
        hours = p.hours
        local = self.local_hour
        hour_start = self.hour_start
        if len(hour_start) > 100_000:
            hour_start.clear()
        for stamp, n in Counter(stamps).items():
            head = stamp[:13]
            base = hour_start.get(head)
            if base is None:
                base = hour_start[head] = fast.stamp_seconds(head + b":00:00Z")
            sec = base + int(stamp[14:16]) * 60 + int(stamp[17:19])
            seconds[stamp] = sec
            windows[stamp] = sec // width
            hours[sec // 3600 % 24 if local is None else local(sec)] += n
        window_of = list(map(windows.__getitem__, stamps))
        p.user_lines.update(zip(users, window_of, strict=True))
        for level, n in Counter(levels).items():
            p.levels[LEVELS[level]] += n
        is_error = list(map(fast.ERROR_TOKENS.__contains__, levels))
        p.user_errors.update(itertools.compress(zip(users, window_of, strict=True), is_error))
        for (service, error, window), n in Counter(zip(services, is_error, window_of, strict=True)).items():
            p.services[service] += n
            p.window_lines[window] += n
            if error:
                p.service_errors[(service, window)] += n
                self.window_errors[window] += n
            else:
                p.service_others[(service, window)] += n
        low, high = seconds[min(stamps)] * NS, seconds[max(stamps)] * NS
        if p.min_ts is None or low < p.min_ts:
            p.min_ts = low
        if p.max_ts is None or high > p.max_ts:
            p.max_ts = high
        self.order_canonical(stamps, seconds, odd, block, lines)

    def order_canonical(
        self,
        stamps: list[bytes],
        seconds: dict[bytes, int],
        odd: list[int],
        block: bytes,
        lines: list[bytes] | None,
    ) -> None:
        """The previous-line and mtime checks for a block whose valid lines are all canonical."""
        seg = self.segment
        base = seg.newlines
        done = 0
        if seg.last_ts is None:
            first = 0
            while first in odd:
                first += 1
            seg.newlines = base + first
            text = lines[first] if lines is not None else block[: block.find(b"\n")]
            self.order(seconds[stamps[0]] * NS, text)
            seg.newlines = base
            done = 1
        assert seg.last_ts is not None
        if (
            stamps == sorted(stamps)
            and seconds[max(stamps)] * NS <= self.future_after
            and seconds[stamps[0]] * NS >= seg.last_ts - self.skew_ns
        ):
            seg.last_ts = seconds[stamps[-1]] * NS
            return
        if lines is None:
            lines = block.split(b"\n")
        oddset = set(odd)
        index = 0
        for number, stamp in enumerate(stamps):
            while index in oddset:
                index += 1
            if number >= done:
                seg.newlines = base + index
                self.order(seconds[stamp] * NS, lines[index])
            index += 1
        seg.newlines = base

    def line(self, line: bytes) -> None:
        """One line; ``segment.newlines`` is its index within the segment."""
        parsed = parse_line(line)
        p = self.partial
        if parsed is None:
            p.lines += 1
            p.blank += 1
        elif isinstance(parsed, Malformed):
            self.malformed(parsed, line)
        else:
            ts, level, service, user = parsed
            p.lines += 1
            if self.ranged and not (
                (self.since is None or ts >= self.since) and (self.until is None or ts < self.until)
            ):
                p.outside += 1  # as if absent: no order check, no example, no window
                return
            p.valid += 1
            p.levels[level] += 1
            p.services[service] += 1
            p.users[user] += 1
            local = self.local_hour
            p.hours[ts // (3600 * NS) % 24 if local is None else local(ts // NS)] += 1
            if p.min_ts is None or ts < p.min_ts:
                p.min_ts = ts
            if p.max_ts is None or ts > p.max_ts:
                p.max_ts = ts
            window = ts // self.window_ns
            if level in ERROR_LEVELS:
                p.service_errors[(service, window)] += 1
                p.user_errors[(user, window)] += 1
                self.window_errors[window] += 1
            else:
                p.service_others[(service, window)] += 1
            p.window_lines[window] += 1
            p.user_lines[(user, window)] += 1
            self.order(ts, line)

    def order(self, ts: int, line: bytes) -> None:
        """The checks that depend on the previous valid line and on the file's mtime."""
        seg = self.segment
        index = seg.newlines
        if seg.last_ts is None:
            seg.first_ts = ts
            seg.first_valid = (index, example_text(line))
        elif ts < seg.last_ts - self.settings.clock_skew_ns:
            seg.backwards += 1
            if len(seg.backwards_examples) < MAX_EXAMPLES:
                seg.backwards_examples.append((index, example_text(line)))
        seg.last_ts = ts
        if ts > self.future_after:
            seg.future += 1
            if len(seg.future_examples) < MAX_EXAMPLES:
                seg.future_examples.append((index, example_text(line)))
            if seg.future_lines is not None:
                seg.future_lines.append((index, ts, example_text(line)))

    def malformed(self, parsed: Malformed, line: bytes) -> None:
        p, seg = self.partial, self.segment
        p.lines += 1
        p.malformed[parsed.reason] += 1
        examples = seg.malformed_examples.setdefault(parsed.reason, [])
        if len(examples) < MAX_EXAMPLES:
            examples.append((seg.newlines, example_text(line)))
        if parsed.reason == "unknown_level":
            p.unknown_levels[parsed.level] += 1
            examples = seg.unknown_examples.setdefault(parsed.level, [])
            if len(examples) < MAX_EXAMPLES:
                examples.append((seg.newlines, example_text(line)))


class KernelScanner(Scanner):
    """A Scanner whose blocks of complete lines are counted by the compiled kernel
    (``_kernel.c``); the lines it hands back go the exact way, as in the Python path."""

    def __init__(self, split: Split, settings: Settings, columns: bool = False) -> None:
        super().__init__(split, settings)
        assert native.compiled is not None
        self.kernel = native.compiled.Kernel(settings.window, self.future_after, self.skew_ns)
        self.columns = columns

    def lines(self, buf: bytes, end: int) -> None:
        """Count ``buf[:end]`` in the kernel. The lines it hands back are counted here: whole
        (``LINE``: unknown levels, over-long lines, malformed lines whose examples are still
        wanted) or for their order checks only (``ORDER``: a segment's first valid line, and
        lines that are examples of going backwards or into the future)."""
        scan, seg, k = self.kernel.scan, self.segment, native.compiled
        assert k is not None
        pos = 0
        while True:
            status, start, stop, skipped, ts, last = scan(buf, pos, end, seg.last_ts,
                                                          native.wanted(seg))
            seg.newlines += skipped
            seg.last_ts = last
            if status == k.DONE:
                return
            if status == k.LINE:
                self.line(buf[start:stop])
            else:
                self.order(ts, buf[start:stop])
            seg.newlines += 1
            pos = stop + 1

    def drain(self) -> None:
        """Move what the kernel counted so far into the partial and the segment."""
        native.drain_into(self.kernel, self.partial, self.segment, self.window_errors,
                          self.columns)

    def _flush(self, flush: Callable[[Partial], None]) -> None:
        self.drain()
        super()._flush(flush)

    def finish(self) -> Partial:
        if self.long_prefix is None and self.carry:  # the unterminated last line, before the drain
            self.line(self.carry)
            self.carry = b""
        self.drain()
        return super().finish()


def scanner_for(split: Split, settings: Settings, columns: bool = False) -> Scanner:
    """The compiled kernel's Scanner where it applies (``kernel.applies``), else the Python one."""
    if native.applies(settings):
        return KernelScanner(split, settings, columns)
    return Scanner(split, settings)
