"""The GDB remote protocol: framing functions, and the stub driven by a raw-socket client against
the fake machine (malformed packets, disconnects mid-packet, reconnection, port in use)."""
from __future__ import annotations

import socket
import threading
import time

import pytest

from aarch64mte.debug.gdb import packets as pk
from aarch64mte.debug.gdb.server import GdbServer, PortInUse
from aarch64mte.debug.gdb.target_xml import PC_REGNUM, REGISTERS, target_xml
from aarch64mte.debug.session import Session

from test_debug_fake import BASE, RAM, SYMBOLS, make


# --- pure framing ---------------------------------------------------------------------------------

def test_checksum_and_frame():
    assert pk.frame("OK") == b"$OK#9a"
    assert pk.frame(b"") == b"$#00"


@pytest.mark.parametrize("data", [b"", b"abc", b"$#}*", bytes(range(256))])
def test_escape_roundtrip(data):
    esc = pk.escape(data)
    assert not any(c in esc for c in b"$#*") or b"}" in esc
    assert pk.unescape(esc) == data


@pytest.mark.parametrize("data", [b"0" * 200, b"00000000ff", b"a" * 7, b"a" * 8, b"a" * 9,
                                  b"0123", b"1" * 97 + b"2" * 3])
def test_rle_roundtrip(data):
    enc = pk.rle_encode(data)
    assert b"#" not in enc and b"$" not in enc
    assert pk.rle_decode(enc) == data
    assert len(enc) <= len(data)


def test_reader_events_and_partial_reads():
    r = pk.PacketReader()
    ev = r.feed(b"+$g#6")
    assert ev == [pk.Ack(True)] and r.mid_packet
    ev = r.feed(b"7\x03$m0,4#00-")
    assert ev[0] == pk.Packet(b"g") and ev[1] == pk.Interrupt()
    assert isinstance(ev[2], pk.BadPacket) and ev[3] == pk.Ack(False)


def test_reader_overflow_is_bad_packet():
    r = pk.PacketReader(max_packet=16)
    ev = r.feed(b"$" + b"A" * 100 + b"#00")
    assert len(ev) == 1 and isinstance(ev[0], pk.BadPacket)


def test_target_xml_has_the_three_features():
    xml = target_xml()
    for f in ("org.gnu.gdb.aarch64.core", "org.gnu.gdb.aarch64.fpu", "org.gnu.gdb.aarch64.mte"):
        assert f in xml
    assert 'name="tag_ctl"' in xml and REGISTERS[PC_REGNUM].name == "pc"


# --- a client ----------------------------------------------------------------------------------------

class Client:
    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.buf = b""

    def send(self, body: str | bytes):
        if isinstance(body, str):
            body = body.encode("latin-1")
        self.sock.sendall(pk.frame(body))

    def _read(self):
        chunk = self.sock.recv(65536)
        if not chunk:
            raise EOFError
        self.buf += chunk

    def read_ack(self) -> bytes:
        while not self.buf:
            self._read()
        c, self.buf = self.buf[:1], self.buf[1:]
        return c

    def read_packet(self) -> bytes:
        while True:
            start = self.buf.find(b"$")
            end = self.buf.find(b"#", start + 1) if start >= 0 else -1
            if start >= 0 and end >= 0 and len(self.buf) >= end + 3:
                body = self.buf[start + 1:end]
                assert int(self.buf[end + 1:end + 3], 16) == pk.checksum(body)
                self.buf = self.buf[end + 3:]
                self.sock.sendall(b"+")
                return pk.rle_decode(body)
            self._read()

    def cmd(self, body) -> bytes:
        self.send(body)
        assert self.read_ack() == b"+"
        return self.read_packet()

    def close(self):
        self.sock.close()


@pytest.fixture
def server():
    m = make()
    m.regs["x2"] = SYMBOLS["buf"]
    srv = GdbServer(Session(m), port=0)
    port = srv.bind()
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield srv, port
    srv.close()
    t.join(timeout=5)
    assert not t.is_alive()


def test_handshake_registers_memory(server):
    srv, port = server
    c = Client(port)
    sup = c.cmd("qSupported:multiprocess+;swbreak+;memory-tagging+").decode()
    assert "memory-tagging+" in sup and "qXfer:features:read+" in sup and "PacketSize=" in sup
    assert c.cmd("?").startswith(b"T05")
    assert c.cmd("qC") == b"QCp1.1"
    g = c.cmd("g")
    assert len(g) == sum(r.bits // 4 for r in REGISTERS)
    assert c.cmd("p%x" % PC_REGNUM) == BASE.to_bytes(8, "little").hex().encode()
    assert c.cmd("P0=0700000000000000") == b"OK"
    assert c.cmd("p0") == b"0700000000000000"
    assert c.cmd("m%x,4" % BASE) == (0x91000000).to_bytes(4, "little").hex().encode()
    # a tagged pointer reads the same memory
    assert c.cmd("m%x,4" % ((0xA << 56) | BASE)) == c.cmd("m%x,4" % BASE)
    assert c.cmd("M%x,2:abcd" % (RAM + 0x100)) == b"OK"
    assert c.cmd(b"X%x,3:" % (RAM + 0x104) + pk.escape(b"}#$")) == b"OK"
    assert c.cmd("m%x,8" % (RAM + 0x100)) == b"abcd00007d2324" + b"00"
    xml = read_xfer(c, "features", "target.xml")
    assert xml.startswith(b"<?xml") and b"org.gnu.gdb.aarch64.mte" in xml
    # the EL1 system registers follow the g packet's, read one at a time
    assert b'name="sctlr_el1"' in xml and b"org.aarch64mte.system.el2" not in xml
    c.close()


def read_xfer(c, obj: str, annex: str) -> bytes:
    """A whole qXfer object, chunk by chunk as GDB reads it ('m' more follows, 'l' last)."""
    out = b""
    while True:
        part = c.cmd(f"qXfer:{obj}:read:{annex}:{len(out):x},ffff")
        assert part[:1] in (b"m", b"l"), part[:40]
        out += pk.unescape(part[1:])
        if part[:1] == b"l":
            return out


def test_memory_tags_packets(server):
    srv, port = server
    c = Client(port)
    buf = SYMBOLS["buf"]
    assert c.cmd("QMemTags:%x,40:1:0305" % buf) == b"OK"       # pattern repeated over 4 granules
    assert c.cmd("qMemTags:%x,40:1" % buf) == b"m03050305"
    assert c.cmd("qMemTags:%x,1:1" % ((7 << 56) | (buf + 0x10))) == b"m05"
    assert c.cmd("qMemTags:%x,19:1" % (buf + 8)) == b"m030503"   # 3 granules touched
    assert c.cmd("qMemTags:%x,1:0" % buf).startswith(b"E")
    assert c.cmd("qMemTags:%x,ffffffff:1" % buf).startswith(b"E")
    assert c.cmd("qIsAddressTagged:%x" % buf) == b"01"
    assert c.cmd("qIsAddressTagged:%x" % (RAM + 0x80000)) == b"00"
    c.close()


def test_breakpoint_continue_step_and_exit(server):
    srv, port = server
    c = Client(port)
    c.cmd("qSupported:multiprocess+")
    inc = SYMBOLS["inc"]
    assert c.cmd("Z0,%x,4" % inc) == b"OK"
    stop = c.cmd("vCont;c")
    assert stop.startswith(b"T05") and b"swbreak" in stop
    assert ("%02x:%s" % (PC_REGNUM, inc.to_bytes(8, "little").hex())).encode() in stop
    stop = c.cmd("vCont;s:p1.1")
    assert ("%02x:%s" % (PC_REGNUM, (inc + 4).to_bytes(8, "little").hex())).encode() in stop
    assert c.cmd("z0,%x,4" % inc) == b"OK"
    assert c.cmd("c") == b"W02;process:1"
    c.close()


def test_tag_fault_stop_reply_and_siginfo(server):
    srv, port = server
    m = srv.session.machine
    m.regs["x2"] = (3 << 56) | SYMBOLS["buf"]
    m.write_tags(SYMBOLS["buf"], [5])
    c = Client(port)
    stop = c.cmd("c")
    assert stop.startswith(b"T0b")
    info = c.cmd("qXfer:siginfo:read::0,80")
    raw = pk.unescape(info[1:])
    assert raw[0] == 11 and raw[8] == 9          # SIGSEGV, SEGV_MTESERR
    assert int.from_bytes(raw[16:24], "little") == (3 << 56) | SYMBOLS["buf"]
    c.close()


def test_smaps_over_vfile(server):
    srv, port = server
    c = Client(port)
    assert c.cmd("vFile:setfs:1") == b"F0"
    fd = c.cmd("vFile:open:%s,0,0" % b"/proc/1/smaps".hex())
    assert fd.startswith(b"F") and not fd.startswith(b"F-")
    data = b""
    while True:
        reply = c.cmd("vFile:pread:%s,1000,%x" % (fd[1:].decode(), len(data)))
        n, _, chunk = reply[1:].partition(b";")
        if int(n, 16) == 0:
            break
        data += pk.unescape(chunk)
    assert b"VmFlags: rd wr ex mr mw me ac mt" in data
    assert b"40000000-40020000" in data
    assert c.cmd("vFile:close:%s" % fd[1:].decode()) == b"F0"
    assert c.cmd("vFile:open:%s,0,0" % b"/etc/passwd".hex()).startswith(b"F-1")
    c.close()


def test_interrupt_while_running(server):
    srv, port = server
    srv.session.machine.regs["pc"] = SYMBOLS["spin"]
    c = Client(port)
    c.send("c")
    assert c.read_ack() == b"+"
    time.sleep(0.2)
    c.sock.sendall(b"\x03")
    stop = c.read_packet()
    assert stop.startswith(b"T02")
    assert c.cmd("p%x" % PC_REGNUM) == SYMBOLS["spin"].to_bytes(8, "little").hex().encode()
    c.close()


def test_malformed_packets_and_recovery(server):
    srv, port = server
    c = Client(port)
    c.sock.sendall(b"$g#00")                    # bad checksum -> '-' and ignored
    assert c.read_ack() == b"-"
    c.sock.sendall(b"$g#zz")
    assert c.read_ack() == b"-"
    assert c.cmd("bogus-packet") == b""           # unknown -> empty
    assert c.cmd("m0,ffffffffff").startswith(b"E")
    assert c.cmd("m10,4").startswith(b"E")       # unmapped
    assert c.cmd("mzz,4").startswith(b"E")
    assert c.cmd("M%x,4:00" % RAM).startswith(b"E")
    assert c.cmd("p1234").startswith(b"E")
    assert c.cmd("P0=00").startswith(b"E")
    assert c.cmd("vFile:pread:99,10,0").startswith(b"F-1")
    assert c.cmd("qXfer:features:read:other.xml:0,10").startswith(b"E")
    c.sock.sendall(b"$" + b"A" * 100000 + b"#00")     # overflow -> dropped
    assert c.read_ack() == b"-"
    c.sock.sendall(b"garbage between packets")
    assert c.cmd("qC").startswith(b"QC")
    c.close()


def test_disconnect_mid_packet_then_reconnect(server):
    srv, port = server
    c = Client(port)
    c.sock.sendall(b"$m4000")                   # never finished
    c.close()
    c = Client(port)
    assert c.cmd("qC").startswith(b"QC")
    c.send("c")                                  # running when the client vanishes
    srv.session.machine.regs["pc"] = SYMBOLS["spin"]
    c.close()
    c = Client(port)
    assert c.cmd("?").startswith(b"T")
    c.close()


def test_no_ack_mode(server):
    srv, port = server
    c = Client(port)
    assert c.cmd("QStartNoAckMode") == b"OK"
    c.send("qC")
    assert c.read_packet().startswith(b"QC")
    c.close()


def test_kill_ends_the_server():
    srv = GdbServer(Session(make()), port=0)
    port = srv.bind()
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    c = Client(port)
    c.send("k")
    t.join(timeout=5)
    assert not t.is_alive() and srv.killed


def test_port_in_use():
    blocker = socket.socket()
    blocker.bind(("127.0.0.1", 0))
    blocker.listen(1)
    try:
        srv = GdbServer(Session(make()), port=blocker.getsockname()[1])
        with pytest.raises(PortInUse):
            srv.bind()
    finally:
        blocker.close()
