"""The host's physical pages: ``struct page`` with the two MTE flags, the frame allocator, and the
tag primitives the kernel runs on a page (mte_clear_page_tags and friends).

Frames are 4 KiB pages of the machine's RAM; their allocation tags are the machine's own tag
storage, so what the host does to a frame is what a guest mapped on it sees. A frame handed out
for the first time carries stale tags (a pattern standing for a previous owner's), because the
page allocator does not clear tags: only the MTE paths in this package do, and a missing clear
shows up as those tags.

The flags follow Linux (arch/arm64/include/asm/mte.h): PG_mte_tagged says the tags were
initialised; PG_mte_lock is taken by the first of the paths that initialise them
(try_page_mte_tagging), and the others wait until PG_mte_tagged is set. ``Host.tag_init``
chooses that locked protocol or the earlier unlocked test-then-set one, whose race this model
exists to show.
"""
from __future__ import annotations

from collections import deque
from typing import Callable, Deque, Dict, Iterator, Optional

from .errors import KvmError

PAGE_SIZE = 0x1000
GRANULE = 16
GRANULES = PAGE_SIZE // GRANULE          # 256 tags per page
# what a frame holds before its first allocation: never 0, so an uncleared tag is visible
STALE_TAGS = bytes(1 + (g % 15) for g in range(GRANULES))


class Page:
    """``struct page`` for one frame: its PA, the MTE flags and who uses it."""
    __slots__ = ("pa", "mte_tagged", "mte_lock", "kind", "guest_mapped")

    def __init__(self, pa: int) -> None:
        self.pa = pa
        self.mte_tagged = False          # PG_mte_tagged
        self.mte_lock = False            # PG_mte_lock
        self.kind = "free"               # free | zero | anon | shmem | file
        self.guest_mapped = False        # the frame has been mapped into a guest (ever)

    @property
    def pfn(self) -> int:
        return self.pa >> 12

    def __repr__(self) -> str:
        flags = [f for f, on in (("tagged", self.mte_tagged), ("lock", self.mte_lock)) if on]
        return f"Page(pfn={self.pfn:#x}, {self.kind}{', ' + ','.join(flags) if flags else ''})"


class Step:
    """One atomic step of a path that initialises tags (what the race model interleaves):
    its effect is done when it is yielded. ``until``: the path cannot take its next step
    before ``until()`` is true (smp_cond_load_acquire on PG_mte_tagged)."""
    __slots__ = ("label", "until")

    def __init__(self, label: str, until: Optional[Callable[[], bool]] = None) -> None:
        self.label = label
        self.until = until

    def ready(self) -> bool:
        return self.until is None or self.until()

    def __repr__(self) -> str:
        return f"Step({self.label!r})"


def drive(steps: Iterator) -> object:
    """Run a step generator to its end alone (no other path runs between its steps) and return
    its value. Alone, a path that must wait for another can never go on: a deadlock."""
    while True:
        try:
            item = next(steps)
        except StopIteration as stop:
            return stop.value
        if not item.ready():
            raise RuntimeError(f"deadlock: {item.label} with no other path running")


class Frames:
    """The frame allocator over the machine's RAM and the tag primitives.

    ``pages[pa]`` is the Page of each frame. Frame 0 is the shared zero page. Frames never used
    are handed out before freed ones, so a page that leaves memory comes back in another frame
    (with another frame's stale tags)."""

    def __init__(self, machine, stale_tags: bool = True) -> None:
        self.m = machine
        self.tags = machine.tags
        self.stale_tags = stale_tags
        base, size = machine.ram.base, machine.ram.size
        self.pages: Dict[int, Page] = {}
        self._fresh = iter(range(base + PAGE_SIZE, base + size, PAGE_SIZE))
        self._free: Deque[int] = deque()
        self.allocated = 0
        self.code_stale = False
        # the zero page: its data is zero and its tags are cleared at boot (cpu_enable_mte,
        # under try_page_mte_tagging), and it is marked tagged so no later path clears it
        self.zero_page = Page(base)
        self.zero_page.kind = "zero"
        self.zero_page.mte_lock = self.zero_page.mte_tagged = True
        self.pages[base] = self.zero_page
        self.clear_tags(self.zero_page)

    # --- allocation -------------------------------------------------------------------------------
    def alloc(self, kind: str, op: str = "page allocation") -> Page:
        """A frame for ``kind`` use: data as the previous owner left it (the caller zeroes or
        fills it), tags stale, flags clear."""
        pa = next(self._fresh, None)
        if pa is not None:
            if self.stale_tags:
                self.tags.set_range(pa, STALE_TAGS)
        elif self._free:
            pa = self._free.popleft()
        else:
            raise KvmError(op, "ENOMEM", f"the host has no free page left "
                           f"({self.m.ram.size >> 20} MiB of RAM; swap pages out or give "
                           f"the host more RAM)")
        page = self.pages.get(pa)
        if page is None:
            page = self.pages[pa] = Page(pa)
        page.kind = kind
        page.mte_tagged = page.mte_lock = False
        self.allocated += 1
        return page

    def free(self, page: Page) -> None:
        """Return a frame; its data and tags stay as they are (the allocator clears nothing)."""
        if page is self.zero_page:
            return
        page.kind = "free"
        page.mte_tagged = page.mte_lock = False
        self.allocated -= 1
        self._free.append(page.pa)

    # --- data -------------------------------------------------------------------------------------
    def read(self, page: Page, offset: int = 0, n: int = PAGE_SIZE) -> bytes:
        return self.m.read_mem(page.pa + offset, n, physical=True)

    def write(self, page: Page, data: bytes, offset: int = 0) -> None:
        """Host writes to a frame (a copy, a swap-in, a load). A frame a guest may have run
        code from leaves the engine's translated code stale until ``flush_code``."""
        self.m.write_mem(page.pa + offset, data, physical=True)
        if page.guest_mapped:
            self.code_stale = True

    def flush_code(self) -> None:
        """Drop the engine's translated code if a host write may have changed code (before
        the guest runs on)."""
        if self.code_stale:
            self.code_stale = False
            self.m.uc.ctl_flush_tb()

    def zero(self, page: Page) -> None:
        self.write(page, bytes(PAGE_SIZE))

    # --- tags: the kernel's page-sized tag routines (arch/arm64/lib/mte.S) ------------------------
    def clear_tags(self, page: Page) -> None:
        """mte_clear_page_tags: every granule's tag to 0 (STGM xzr over the page)."""
        self.tags.fill(page.pa, GRANULES, 0)

    def read_tags(self, page: Page) -> bytes:
        """The page's 256 allocation tags, one per byte."""
        return self.tags.get_range(page.pa, GRANULES)

    def write_tags(self, page: Page, tags: bytes) -> None:
        self.tags.set_range(page.pa, tags)

    def tag(self, pa: int) -> int:
        return self.tags.get(pa)

    def set_tag(self, pa: int, tag: int) -> None:
        self.tags.set(pa, tag)


# --- the flag protocols ---------------------------------------------------------------------------

def init_tags_steps(frames: Frames, page: Page, locked: bool, who: str,
                    on_clear: Optional[Callable[[], None]] = None):
    """Initialise a page's tags once: clear them and mark the page tagged, unless some path
    already did. A generator of Steps (run it with ``drive`` or the race scheduler); returns
    True when this path cleared the tags.

    ``locked`` (Linux 6.2 on, sanitise_mte_tags / mte_sync_tags): try_page_mte_tagging takes
    PG_mte_lock with a test-and-set; the winner clears and sets PG_mte_tagged; a loser waits for
    PG_mte_tagged. Unlocked (the first KVM MTE code): test PG_mte_tagged, clear, set it -- two
    paths can both see it clear, and the later clear wipes tags the other path has written since.
    """
    if locked:
        won = not page.mte_lock
        page.mte_lock = True                                     # test_and_set_bit
        if not won:
            if page.mte_tagged:
                yield Step(f"{who}: try_page_mte_tagging -> lock held, already tagged")
            else:
                yield Step(f"{who}: try_page_mte_tagging -> lock held, waits for "
                           f"PG_mte_tagged", until=lambda: page.mte_tagged)
            return False
        yield Step(f"{who}: try_page_mte_tagging -> won PG_mte_lock")
        return (yield from _clear_and_mark(frames, page, who, on_clear))
    tagged = page.mte_tagged
    yield Step(f"{who}: test PG_mte_tagged -> {'set' if tagged else 'clear'}")
    if tagged:
        return False
    return (yield from _clear_and_mark(frames, page, who, on_clear))


def _clear_and_mark(frames, page: Page, who: str, on_clear):
    """mte_clear_page_tags, then set_page_mte_tagged: what both paths do once they own the
    page's first initialisation (returns True: this path cleared it)."""
    frames.clear_tags(page)
    if on_clear is not None:
        on_clear()
    yield Step(f"{who}: mte_clear_page_tags")
    page.mte_tagged = True
    yield Step(f"{who}: set PG_mte_tagged")
    return True


def mark_tagged(page: Page) -> None:
    """set_page_mte_tagged after a path that wrote every tag of the page (a copy, a restore)."""
    page.mte_lock = True
    page.mte_tagged = True


