"""GDB remote serial protocol framing: `$data#cc` packets, acks, escaping, run-length encoding.

Pure functions and one incremental parser; no sockets here, so every corner of the framing can be
tested with byte strings. The protocol text is in GDB's manual, appendix "Remote Protocol"
("Overview" for framing, escaping and RLE; "Packet Acknowledgment" for `+`/`-`).
"""
from __future__ import annotations

from dataclasses import dataclass

#: The largest packet body we accept. GDB never sends more than the PacketSize we advertise;
#: anything longer is hostile or broken and is discarded without buffering it.
MAX_PACKET = 0x4000
#: What qSupported advertises (hex in the reply): room for `G` with every register and for a
#: full `m`/`X` of MAX_PACKET/2 bytes.
PACKET_SIZE = MAX_PACKET
MAX_MEM = PACKET_SIZE // 2 - 16      # largest m/qMemTags reply that still fits one packet

INTERRUPT = 0x03
_ESCAPED = frozenset(b"$#}*")


def checksum(data: bytes) -> int:
    """Modulo-256 sum of the bytes between `$` and `#`."""
    return sum(data) & 0xFF


def frame(data: bytes | str) -> bytes:
    """`$data#cc`; the caller has already escaped binary data."""
    if isinstance(data, str):
        data = data.encode("latin-1")
    return b"$" + data + b"#%02x" % checksum(data)


def escape(data: bytes) -> bytes:
    """Escape binary data for `X` payloads and binary replies: `}` then the byte XOR 0x20."""
    out = bytearray()
    for b in data:
        if b in _ESCAPED:
            out.append(0x7D)
            out.append(b ^ 0x20)
        else:
            out.append(b)
    return bytes(out)


def unescape(data: bytes) -> bytes:
    """Undo `escape` (a trailing lone `}` is dropped: it escapes nothing)."""
    if b"}" not in data:
        return data
    out = bytearray()
    it = iter(data)
    for b in it:
        if b == 0x7D:
            nxt = next(it, None)
            if nxt is None:
                break
            out.append(nxt ^ 0x20)
        else:
            out.append(b)
    return bytes(out)


def rle_encode(data: bytes) -> bytes:
    """Run-length encode a reply body: `X*n` repeats X (n - 29) more times.

    Runs are only encoded when that is shorter, and never with a count character that would be
    `#` or `$` (counts 6 and 7), as the manual requires; those runs are split.
    """
    out = bytearray()
    i, n = 0, len(data)
    while i < n:
        b = data[i]
        j = i + 1
        while j < n and data[j] == b and j - i < 96:     # count char stays below '}'
            j += 1
        run = j - i
        if run > 3:
            extra = run - 1
            while extra in (6, 7):              # 29 + 6 = '#', 29 + 7 = '$'
                extra -= 1
            out.append(b)
            out.append(ord("*"))
            out.append(29 + extra)
            i += extra + 1
        else:
            out.extend(data[i:j])
            i = j
    return bytes(out)


def rle_decode(data: bytes) -> bytes:
    """Expand `X*n` runs (GDB may send them in theory; we accept them)."""
    if b"*" not in data:
        return data
    out = bytearray()
    i = 0
    while i < len(data):
        b = data[i]
        if b == ord("*") and out and i + 1 < len(data):
            out.extend(out[-1:] * (data[i + 1] - 29))
            i += 2
        else:
            out.append(b)
            i += 1
    return bytes(out)


def hexbytes(data: bytes) -> str:
    return data.hex()


def unhex(text: str | bytes) -> bytes:
    """Hex digits to bytes; raises ValueError on odd length or a non-hex digit."""
    if isinstance(text, bytes):
        text = text.decode("latin-1")
    return bytes.fromhex(text)


def parse_hex(text: str | bytes) -> int:
    """One hex number (no prefix, no sign); ValueError when empty or not hex."""
    if isinstance(text, bytes):
        text = text.decode("latin-1")
    if not text or any(c not in "0123456789abcdefABCDEF" for c in text):
        raise ValueError(f"not a hex number: {text!r}")
    return int(text, 16)


# --- the incremental reader ----------------------------------------------------------------------

@dataclass(frozen=True)
class Packet:
    """A packet whose checksum was right; `data` is unescaped only where the command wants it."""
    data: bytes


@dataclass(frozen=True)
class BadPacket:
    """A packet with a wrong checksum or one that overflowed MAX_PACKET: answer `-`, drop it."""
    reason: str


@dataclass(frozen=True)
class Interrupt:
    """A lone 0x03 byte between packets: the client wants a running target to stop."""


@dataclass(frozen=True)
class Ack:
    ok: bool


class PacketReader:
    """Feed raw bytes; iterate the events they complete. Keeps state across partial reads."""

    def __init__(self, max_packet: int = MAX_PACKET):
        self.max_packet = max_packet
        self._state = "idle"            # idle | body | csum1 | csum2
        self._body = bytearray()
        self._csum = bytearray()
        self._overflow = False

    @property
    def mid_packet(self) -> bool:
        return self._state != "idle"

    def feed(self, chunk: bytes):
        events = []
        for b in chunk:
            state = self._state
            if state == "idle":
                if b == 0x24:                   # '$'
                    self._state = "body"
                    self._body.clear()
                    self._overflow = False
                elif b == INTERRUPT:
                    events.append(Interrupt())
                elif b == 0x2B:                 # '+'
                    events.append(Ack(True))
                elif b == 0x2D:                 # '-'
                    events.append(Ack(False))
                # anything else between packets is noise and is ignored
            elif state == "body":
                if b == 0x23:                   # '#'
                    self._state = "csum1"
                    self._csum.clear()
                elif b == 0x24:                 # a new '$' inside a packet: restart framing
                    self._body.clear()
                    self._overflow = False
                elif len(self._body) >= self.max_packet:
                    self._overflow = True
                else:
                    self._body.append(b)
            else:
                self._csum.append(b)
                if state == "csum1":
                    self._state = "csum2"
                    continue
                self._state = "idle"
                events.append(self._finish())
        return events

    def _finish(self):
        if self._overflow:
            return BadPacket("packet too long")
        try:
            want = int(self._csum.decode("latin-1"), 16)
        except ValueError:
            return BadPacket("checksum is not hex")
        body = bytes(self._body)
        if checksum(body) != want:
            return BadPacket(f"checksum {want:02x} != {checksum(body):02x}")
        return Packet(body)
