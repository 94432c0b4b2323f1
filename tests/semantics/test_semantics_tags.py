"""TagStorage: one tag per 16-byte physical granule, with change notification."""
import pytest
from hypothesis import given, strategies as st

from aarch64mte.semantics.tags import TagStorage, TagStorageError

RAM = 0x4000_0000


def make(**kw):
    return TagStorage([(RAM, 0x4000), (0x8000_0000, 0x800)], **kw)


def test_starts_zero_and_get_set():
    s = make()
    assert s.get(RAM) == 0
    s.set(RAM + 0x17, 0xA)                    # any byte of a granule names the granule
    assert s.get(RAM + 0x10) == 0xA and s.get(RAM + 0x1F) == 0xA
    assert s.get(RAM + 0x20) == 0 and s.get(RAM + 0x0F) == 0
    s.set(RAM, 0x1F)                          # tags are 4 bits
    assert s.get(RAM) == 0xF


def test_covers_and_errors():
    s = make()
    assert s.covers(RAM) and s.covers(RAM + 0x3FFF) and not s.covers(RAM + 0x4000)
    assert s.covers(RAM, 0x4000) and not s.covers(RAM, 0x4001)
    assert s.covers(0x8000_0000 + 0x7F0, 16)
    with pytest.raises(TagStorageError):
        s.get(RAM - 1)
    with pytest.raises(TagStorageError):
        s.set_range(RAM + 0x3FF0, [1, 2])
    with pytest.raises(ValueError):
        TagStorage([(RAM + 8, 0x100)])
    with pytest.raises(ValueError):
        TagStorage([(RAM, 0x100), (RAM + 0x80, 0x100)])


def test_ranges_and_fill():
    s = make()
    s.set_range(RAM + 0x100, [1, 2, 3])
    assert s.get_range(RAM + 0x100, 4) == bytes([1, 2, 3, 0])
    s.fill(RAM, 0x40, 7)
    assert s.get_range(RAM, 0x40) == bytes([7]) * 0x40
    assert s.ranges == [(RAM, 0x4000), (0x8000_0000, 0x800)]
    s.reset(0)
    assert s.uniform_tag(RAM, 0x4000) == 0


def test_uniform_tag():
    s = make()
    assert s.uniform_tag(RAM, 1024) == 0
    s.fill(RAM + 0x400, 64, 5)
    assert s.uniform_tag(RAM + 0x400, 1024) == 5
    assert s.uniform_tag(RAM + 0x3F8, 16) is None     # straddles a 0 and a 5 granule
    assert s.uniform_tag(RAM + 0x400, 1) == 5
    s.set(RAM + 0x7F0, 6)
    assert s.uniform_tag(RAM + 0x400, 1024) is None
    assert s.uniform_tag(RAM + 0x3FF0, 32) is None    # runs off the end of the range
    assert s.uniform_tag(0x1000, 16) is None          # not covered


def test_on_change_only_for_pages_that_change():
    pages = []
    s = make(page_size=1024, on_change=pages.append)
    s.set(RAM + 0x410, 3)
    assert pages == [RAM + 0x400]
    v = s.version
    s.set(RAM + 0x410, 3)                             # same value: no notification
    s.fill(RAM, 64, 0)
    assert pages == [RAM + 0x400] and s.version == v
    s.fill(RAM + 0x3F0, 3, 9)                         # crosses a page boundary
    assert pages[1:] == [RAM, RAM + 0x400]
    s.set_range(RAM + 0x800, [1] * 128)               # two whole pages
    assert pages[3:] == [RAM + 0x800, RAM + 0xC00]
    assert s.version == v + 2


def test_page_tags():
    s = make(page_size=1024)
    s.set(RAM + 0x420, 4)
    pt = s.page_tags(RAM + 0x4FF)
    assert len(pt) == 64 and pt[2] == 4 and pt.count(0) == 63


def test_counters():
    s = make()
    s.get(RAM)
    s.get_range(RAM, 16)
    s.set(RAM, 1)
    s.fill(RAM, 4, 1)
    s.set_range(RAM, [1, 2])
    s.uniform_tag(RAM, 1024)                          # queries count nothing
    assert s.granules_read == 17 and s.granules_written == 7


@given(st.integers(0, 0x3C0), st.lists(st.integers(0, 15), min_size=1, max_size=64))
def test_set_get_range_round_trip(granule, tags):
    s = make()
    pa = RAM + 16 * granule
    s.set_range(pa, tags)
    assert list(s.get_range(pa, len(tags))) == tags
    expect = tags[0] if all(t == tags[0] for t in tags) else None
    assert s.uniform_tag(pa, 16 * len(tags)) == expect
