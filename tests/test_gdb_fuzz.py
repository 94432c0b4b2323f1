"""The GDB stub (`aarch64mte gdbserver`, a real subprocess) against malformed and random remote-
protocol input over a socket: bad checksums, truncated and very long packets, huge lengths in
m/M/X/qMemTags/QMemTags, unknown packets, binary junk. The stub must answer every well-framed
packet (`+` and one reply, an error reply being an answer), reject every badly framed one (`-`),
stay alive and responsive (a `?` after each case gets a stop reply), and print no traceback.

Default: a fixed corpus (about 1,700 packets) and 1,500 random ones. `--long`: 100,000 random.
"""
from __future__ import annotations

import os
import random
import socket
import time
from pathlib import Path

import pytest

from aarch64mte.debug.gdb import packets as pk
from gdb_support import DEMO, StubProcess

REPLY_TIMEOUT = 20.0


class Client:
    """A raw protocol client that reads the stub's answers as events: '+', '-', or a packet."""

    def __init__(self, port: int):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=REPLY_TIMEOUT)
        self.reader = pk.PacketReader(max_packet=1 << 20)

    def until(self, done, timeout: float = REPLY_TIMEOUT) -> list:
        """Events ('+', '-', packets) until done(event) holds for one; all of them."""
        out = []
        deadline = time.monotonic() + timeout
        while not out or not done(out[-1]):
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no answer within {timeout} s (got {out})")
            self.sock.settimeout(left)
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError(f"the stub closed the connection (got {out})")
            for ev in self.reader.feed(chunk):
                out.append(ev)
                if done(ev):
                    break
        return out

    def reply(self) -> pk.Packet:
        evs = self.until(lambda ev: isinstance(ev, (pk.Packet, pk.BadPacket)))
        assert isinstance(evs[-1], pk.Packet), evs
        return evs[-1]

    def ask(self, body: bytes) -> bytes:
        """Send one well-framed packet; its reply body (after the '+' ack)."""
        self.sock.sendall(pk.frame(body))
        evs = self.until(lambda ev: isinstance(ev, (pk.Packet, pk.BadPacket)))
        assert evs[0] == pk.Ack(True), (body[:60], evs)
        assert isinstance(evs[-1], pk.Packet), (body[:60], evs)
        return evs[-1].data

    def alive(self) -> None:
        reply = self.ask(b"?")
        assert reply[:1] in (b"T", b"S", b"W"), reply

    def close(self):
        self.sock.close()


# --- what is sent ------------------------------------------------------------------------------

BIG = ["ffffffffffffffff", "10000000000000000", "f" * 40, "7fffffffffffffff", "0", "",
       "zz", "-1", "40081000", "4008" + "0" * 12]


def _hex(text: str) -> str:
    return text.encode().hex()


def corpus() -> list[bytes]:
    """Well-framed packets with bad arguments, aimed at each handler."""
    out = []
    for a in BIG:
        for n in BIG:
            out += [f"m{a},{n}", f"M{a},{n}:00", f"M{a},{n}:zz", f"X{a},{n}:",
                    f"qMemTags:{a},{n}:1", f"qMemTags:{a},{n}:{n}", f"QMemTags:{a},{n}:1:0102",
                    f"QMemTags:{a},{n}:1:", f"QMemTags:{a},{n}:{a}:zz", f"Z0,{a},{n}",
                    f"z0,{a},{n}", f"vFile:pread:{a},{n},{a}",
                    f"qXfer:features:read:target.xml:{a},{n}",
                    f"qXfer:siginfo:read::{a},{n}", f"qXfer:exec-file:read::{a},{n}"]
        out += [f"p{a}", f"P{a}=00", f"P{a}={'ff' * 300}", f"qIsAddressTagged:{a}",
                f"vFile:close:{a}", f"vFile:fstat:{a}", f"s{a}", f"H{a}", f"T{a}",
                f"qRcmd,{_hex('tags ' + a + ' ' + a)}", f"qRcmd,{_hex('tags 0x' + a)}"]
    out += ["G", "Gzz", "G0", "G" + "00" * 8000, "P", "P=", "X", "X40081000", "X40081000,4",
            "M", "M40081000", "m", "m,", "m40081000", "qMemTags", "qMemTags:", "QMemTags:::",
            "qXfer", "qXfer:features:read", "qXfer:features:read:other.xml:0,10",
            "qXfer:nonsense:read::0,10", "qXfer:features:write:target.xml:0,10",
            "qRcmd,zz", "qRcmd," + _hex("tags"), "qRcmd," + _hex("tags 0 99999999999"),
            "qRcmd," + _hex("nonsense"), "qRcmd," + _hex("faults"), "qRcmd,",
            "vFile:open:" + _hex("/etc/passwd") + ",0,0", "vFile:open:zz",
            "vFile:open:" + _hex("/proc/1/smaps") + ",0,0", "vFile:pread:3,ffffffff,0",
            "vFile:pread:3,10,ffffffffffffffff", "vFile:pread", "vFile:", "vFile:unlink:00",
            "vFile:setfs:zz", "vCont", "vCont;", "vCont;x", "vCont;s:zz", "vCont;t:p0.0",
            "vCont?", "vMustReplyEmpty", "vNonsense", "vCtrlC", "qSupported:" + "x" * 5000,
            "qSupported:multiprocess+;xmlRegisters=aarch64", "qC", "qAttached:zz",
            "qfThreadInfo", "qsThreadInfo", "qOffsets", "qSymbol::", "qThreadExtraInfo,zz",
            "QThreadEvents:1", "QNonStop:1", "QPassSignals:zz", "Qnonsense", "qnonsense", "!",
            "?", "g", "A", "b", "B", "d", "i", "I", "r", "R00", "t", "y", "~", "}", "\x00",
            "\xff" * 100, "s", "S05", "S05;zz", "Z9,0,0", "Z", "z", "Z0", "Zzz,0,0"]
    return [p.encode("latin-1") for p in out]


def framing() -> list[tuple[bytes, str]]:
    """Raw byte strings and what the stub must do: 'reject' (answer '-'), 'ignore' (no answer)
    or 'answer' (an ack and a reply)."""
    body = b"m40081000,4"
    good = pk.frame(body)
    long_body = b"m" + b"0" * 20000
    return [(b"$" + body + b"#00", "reject"),                  # wrong checksum
            (b"$" + body + b"#zz", "reject"),                  # checksum not hex
            (b"$" + b"A" * 70000 + b"#00", "reject"),          # longer than any packet
            (b"$" + long_body + b"#%02x" % pk.checksum(long_body), "reject"),
            (b"garbage between packets \x00\xff\x7f", "ignore"),
            (b"+++---", "ignore"),
            (b"#00", "ignore"),
            (b"$m40$" + good[1:], "answer"),                   # a new '$' restarts the packet
            (good[:5] + b"", "answer-later"),                  # cut short, finished below
            ]


def random_packet(rng: random.Random) -> bytes:
    """A random packet body: a known command letter with random arguments, or noise."""
    heads = ["m", "M", "X", "g", "G", "p", "P", "Z0,", "z0,", "Z1,", "qMemTags:", "QMemTags:",
             "qXfer:features:read:target.xml:", "qXfer:siginfo:read::", "vFile:pread:",
             "vFile:open:", "vFile:close:", "qRcmd,", "qIsAddressTagged:", "s", "vCont;s",
             "H", "T", "q", "Q", "v", "?", "qSupported:", "vCont;c", "c"]
    head = rng.choice(heads + [chr(rng.randrange(0x21, 0x7f))])
    parts = []
    for _ in range(rng.randrange(4)):
        kind = rng.randrange(4)
        if kind == 0:
            parts.append(f"{rng.getrandbits(rng.choice([4, 16, 32, 64, 72])):x}")
        elif kind == 1:
            parts.append(rng.choice(BIG))
        elif kind == 2:
            parts.append(os.urandom(rng.randrange(1, 40)).hex())
        else:
            parts.append(bytes(rng.randrange(256) for _ in range(rng.randrange(1, 30)))
                         .decode("latin-1"))
    body = (head + rng.choice([",", ":", ";", "="]).join(parts)).encode("latin-1")
    return pk.escape(body)


def _answer_or_run(client: Client, body: bytes) -> None:
    """Send a packet and wait for its one reply (for a `c`, the stop reply when the run ends)."""
    client.ask(body)


def fuzz(tmp_path: Path, random_count: int, seed: int) -> dict:
    stub = StubProcess(tmp_path, DEMO, "--max-insns", "200000")
    sent = 0
    try:
        c = Client(stub.port)
        c.ask(b"qSupported:multiprocess+;swbreak+;memory-tagging+")
        for body in corpus():
            _answer_or_run(c, body)
            c.alive()
            sent += 1
        for raw, want in framing():
            c.sock.sendall(raw)
            if want == "reject":
                c.until(lambda ev: ev == pk.Ack(False))
            elif want == "answer":
                c.reply()
            elif want == "answer-later":
                c.sock.sendall(pk.frame(b"m40081000,4")[5:])
                c.reply()
            c.alive()
            sent += 1
        rng = random.Random(seed)
        for i in range(random_count):
            body = random_packet(rng)
            if body[:1] in b"kD" or body.startswith(b"vKill") or b"QStartNoAckMode" in body:
                continue
            _answer_or_run(c, body)
            sent += 1
            if i % 10 == 0:
                c.alive()
        c.alive()
        c.sock.sendall(b"\x03")                 # an interrupt when nothing runs: a stop reply
        assert c.reply().data[:1] in (b"T", b"S", b"W")
        c.close()
        assert stub.proc.poll() is None, "the stub died"
    finally:
        status = stub.stop()
    log = stub.stderr()
    return {"sent": sent, "status": status, "log": log,
            "leftovers": sorted(p.name for p in stub.tmp.iterdir())}


def _check(figures: dict) -> None:
    print(f"\nGDB fuzz: {figures['sent']} packets; stub exit status {figures['status']} after "
          f"SIGTERM; failures: 0")
    assert "Traceback" not in figures["log"], figures["log"][-4000:]
    assert "internal error" not in figures["log"], figures["log"][-4000:]
    assert figures["status"] == 128 + 15        # ended by SIGTERM, cleanly
    assert figures["leftovers"] == []           # its temporary ELF removed


def test_malformed_and_random_packets(tmp_path):
    _check(fuzz(tmp_path, random_count=1500, seed=1))


@pytest.mark.long
@pytest.mark.timeout(3600)
def test_malformed_and_random_packets_deep(tmp_path):
    _check(fuzz(tmp_path, random_count=100000, seed=2))
