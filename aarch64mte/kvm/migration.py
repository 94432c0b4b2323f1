"""Saving a VM to a file and restoring it on another: RAM, tags and vCPU state, stopped or live.

Tags are not in RAM: the VMM must carry them itself (api.rst: KVM_CAP_ARM_MTE -- "the VMM needs
to manually save/restore the tags as appropriate if the VM is migrated"). ``tags`` says how the
source VMM reads them:

- ``copy_tags`` -- KVM_ARM_MTE_COPY_TAGS (KVM_ARM_TAGS_FROM_GUEST), page by page;
- ``prot_mte``  -- LDG through a PROT_MTE mapping of guest memory (with PSTATE.TCO = 1);
- ``untagged``  -- through a mapping without PROT_MTE, where every tag reads 0: the migration
  "works", and every non-zero tag is silently lost. The report lists them.

The destination writes tags back with KVM_ARM_MTE_COPY_TAGS (KVM_ARM_TAGS_TO_GUEST).

Live migration (``LiveMigration``) sends every page, then, while the guest runs, the pages
KVM_GET_DIRTY_LOG reports -- a tag store is a write at stage 2, so a page whose tags changed
and data did not is sent again -- and at the end the remaining dirty pages and the vCPUs.

File format (version 1), little-endian::

    header   magic "AMTEKVM\\0" (8) | version u16 | 0 u16 | records u32 | payload bytes u64 |
             SHA-256 of the payload (32)
    payload  records: kind u8 | length u32 | body
             1 CONFIG  JSON: mte, tcf, memslots [{ipa, size, backing, prot_mte, readonly}],
                       vcpus, boot {profile, entry, text_end, symbols, regs, stack_top} | null,
                       tags (the mode)
             2 PAGE    ipa u64 | 4096 bytes of data | has_tags u8 | 256 tags, one per byte
             3 VCPU    JSON: index, regs {name: hex string}, rng, text_end
             4 END     (empty)

A later PAGE record for the same IPA replaces an earlier one. Restoring checks everything --
magic, version, length, checksum, every record -- before it creates the VM, so a truncated or
corrupted file is a KvmError and nothing else happens.
"""
from __future__ import annotations

import hashlib
import json
import os
import struct
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

from ..errors import InputError, host_failures, read_input
from .errors import KvmError
from .mm import Anon, File, Memfd
from .pages import GRANULE, GRANULES, PAGE_SIZE
from .vcpu import REGISTERS

MAGIC = b"AMTEKVM\0"
VERSION = 1
HEADER = struct.Struct("<8sHHIQ32s")
RECORD = struct.Struct("<BI")
CONFIG, PAGE, VCPU, END = 1, 2, 3, 4
TAG_MODES = ("copy_tags", "prot_mte", "untagged")
MAX_FILE = 1 << 31
OP_SAVE, OP_RESTORE = "migration save", "migration restore"


@dataclass
class LostTag:
    ipa: int                  # the granule
    tag: int                  # its tag in the source VM
    saved: int                # what the migration carried


@dataclass
class MigrationReport:
    path: str
    tag_mode: str
    pages: int = 0            # page records written (a page sent twice counts twice)
    tagged_pages: int = 0     # pages with tags carried
    rounds: List[List[int]] = field(default_factory=list)    # IPAs sent in each round
    lost: List[LostTag] = field(default_factory=list)

    def lost_summary(self) -> List[str]:
        return [f"{t.ipa:#x}: tag {t.tag:#x} -> {t.saved:#x}" for t in self.lost]


# --- what a source VM has -------------------------------------------------------------------------

def populated_pages(vm) -> List[int]:
    """IPAs of the guest pages the host holds something for (a frame of their own or a swap
    entry); never-written pages are zero and tagless and need not be sent."""
    out = []
    zero = vm.host.frames.zero_page
    for s in vm.memslots:
        if s.backing.pfnmap:
            continue
        if isinstance(s.backing, (Memfd, File)):
            first = s.vma.pgoff
            for index in s.backing.pages:
                if first <= index < first + s.size // PAGE_SIZE:
                    out.append(s.ipa + (index - first) * PAGE_SIZE)
            continue
        for p in range(s.vma.start, s.vma.end, PAGE_SIZE):
            pte = vm.mm.ptes.get(p)
            if pte is not None and (pte.swap is not None or
                                    (pte.page is not None and pte.page is not zero)):
                out.append(s.ipa + (p - s.vma.start))
    return sorted(out)


def guest_tags(vm, ipa: int) -> bytes:
    """The tags the guest sees in the page at ``ipa``: zeros for a page never initialised."""
    page, saved = vm._page_of(ipa)
    if page is not None:
        return vm.host.frames.read_tags(page) if page.mte_tagged else bytes(GRANULES)
    if saved is not None:
        from .swap import unpack_tags
        return unpack_tags(saved)
    return bytes(GRANULES)


class _Writer:
    def __init__(self, vm, tag_mode: str, report: MigrationReport) -> None:
        if tag_mode not in TAG_MODES:
            raise KvmError(OP_SAVE, "EINVAL", f"tags={tag_mode!r} is not one of "
                                              f"{', '.join(TAG_MODES)}")
        self.vm = vm
        self.tag_mode = tag_mode if vm.mte else None
        self.report = report
        self.records: List[Tuple[int, bytes]] = []
        self.lost: Dict[int, LostTag] = {}
        from .vm import _LoaderAccess
        self.data = _LoaderAccess(vm)
        self.tags = None
        if self.tag_mode == "prot_mte":
            self.tags = vm.vmm_access("tco", "migration")
        elif self.tag_mode == "untagged":
            self.tags = vm.vmm_access("untagged", "migration")

    def config(self) -> None:
        vm = self.vm
        boot = vm.boot
        cfg = {
            "mte": vm.mte, "tcf": vm.tcf, "vcpus": len(vm.vcpus), "tags": self.tag_mode,
            "memslots": [{"ipa": s.ipa, "size": s.size, "backing": _backing_name(s),
                          "prot_mte": s.vma.prot_mte, "readonly": s.readonly}
                         for s in vm.memslots],
            "boot": None if boot is None else {
                "profile": boot.profile, "entry": boot.entry, "text_end": boot.text_end,
                "symbols": boot.symbols, "regs": boot.regs, "stack_top": boot.stack_top},
        }
        self.records.append((CONFIG, json.dumps(cfg, sort_keys=True).encode()))

    def page(self, ipa: int) -> None:
        vm = self.vm
        reference = guest_tags(vm, ipa) if self.tag_mode else None
        data = self.data.read(ipa, PAGE_SIZE)
        body = struct.pack("<Q", ipa) + data
        if self.tag_mode is None:
            body += b"\0"
        else:
            if self.tag_mode == "copy_tags":
                buf = bytearray(GRANULES)
                vm.copy_tags(ipa, PAGE_SIZE, buf)
                tags = bytes(buf)
            else:
                tags = bytes(self.tags.read_tags(ipa, PAGE_SIZE))
            body += b"\1" + tags
            self.report.tagged_pages += 1
            for g in range(GRANULES):                 # the latest copy of a page counts
                key = ipa + g * GRANULE
                if reference[g] != tags[g]:
                    self.lost[key] = LostTag(key, reference[g], tags[g])
                else:
                    self.lost.pop(key, None)
        self.records.append((PAGE, body))
        self.report.pages += 1

    def vcpus(self) -> None:
        for v in self.vm.vcpus:
            # an MMIO access the last run returned for is finished first, as a VMM does
            # (KVM_RUN with immediate_exit) before it reads the registers
            v.complete_mmio()
            state = v.state()
            regs = {k: f"{val:#x}" for k, val in state.items()}
            body = {"index": v.index, "regs": regs, "rng": f"{v.rng:#x}",
                    "text_end": f"{v.text_end:#x}"}
            self.records.append((VCPU, json.dumps(body, sort_keys=True).encode()))

    def write(self, path: str) -> None:
        self.report.lost = [self.lost[k] for k in sorted(self.lost)]
        self.records.append((END, b""))
        payload = b"".join(RECORD.pack(k, len(b)) + b for k, b in self.records)
        header = HEADER.pack(MAGIC, VERSION, 0, len(self.records), len(payload),
                             hashlib.sha256(payload).digest())
        with host_failures(path, "writing the migration file"):
            with open(path, "wb") as f:
                f.write(header + payload)


def _backing_name(s) -> str:
    return {Anon: "anon", Memfd: "shared", File: "file"}.get(type(s.backing), "device")


def save(vm, path: str, tags: str = "copy_tags") -> MigrationReport:
    """Stop-and-copy: every populated page, then the vCPUs."""
    report = MigrationReport(path, tags)
    w = _Writer(vm, tags, report)
    w.config()
    pages = populated_pages(vm)
    for ipa in pages:
        w.page(ipa)
    report.rounds.append(pages)
    w.vcpus()
    w.write(path)
    return report


class LiveMigration:
    """``mig = LiveMigration(vm, path)``: dirty logging on and every page sent; run the guest;
    ``mig.iterate()`` sends what it dirtied; ``mig.finish()`` (the guest stopped) sends the
    rest and the vCPUs, writes the file and returns the report."""

    def __init__(self, vm, path: str, tags: str = "copy_tags") -> None:
        self.vm = vm
        self.path = path
        self.report = MigrationReport(path, tags)
        self.writer = _Writer(vm, tags, self.report)
        self.writer.config()
        vm.enable_dirty_logging()
        pages = populated_pages(vm)
        for ipa in pages:
            self.writer.page(ipa)
        self.report.rounds.append(pages)

    def iterate(self) -> List[int]:
        vm = self.vm
        dirty = sorted(set(vm.get_dirty_log()) | vm.vmm_dirty)
        vm.vmm_dirty.clear()
        for ipa in dirty:
            self.writer.page(ipa)
        self.report.rounds.append(dirty)
        return dirty

    def finish(self) -> MigrationReport:
        self.iterate()
        self.vm.disable_dirty_logging()
        self.writer.vcpus()
        self.writer.write(self.path)
        return self.report


# --- restore --------------------------------------------------------------------------------------

def _bad(path: str, message: str, errno_name: str = "EINVAL") -> KvmError:
    return KvmError(OP_RESTORE, errno_name, f"{path}: {message}")


def _int(v, what: str, path: str, bits: int = 64) -> int:
    if isinstance(v, str):
        try:
            v = int(v, 16)
        except ValueError:
            raise _bad(path, f"{what} {v!r} is not a hex number") from None
    if not isinstance(v, int) or isinstance(v, bool) or not 0 <= v < 1 << bits:
        raise _bad(path, f"{what} {v!r} is not a {bits}-bit unsigned number")
    return v


def parse(path: str) -> dict:
    """Read and check a migration file; everything ``restore`` needs, or a KvmError."""
    if not os.path.exists(path):
        raise _bad(path, "no such file", "ENOENT")
    try:
        with host_failures(path):
            data = read_input(path, MAX_FILE)
    except InputError as e:
        raise KvmError(OP_RESTORE, "EIO", str(e)) from None
    if len(data) < HEADER.size:
        raise _bad(path, f"truncated: {len(data)} bytes, shorter than the {HEADER.size}-byte "
                         f"header", "EBADMSG")
    magic, version, zero, nrec, length, digest = HEADER.unpack_from(data)
    if magic != MAGIC:
        raise _bad(path, "not a migration file of this model (bad magic)", "EBADMSG")
    if version != VERSION:
        raise _bad(path, f"format version {version}; this model reads version {VERSION}")
    payload = data[HEADER.size:]
    if len(payload) < length:
        raise _bad(path, f"truncated: the payload is {len(payload)} bytes of {length}", "EBADMSG")
    if len(payload) > length or zero:
        raise _bad(path, "corrupted: bytes after the payload or a non-zero reserved field",
                   "EBADMSG")
    if hashlib.sha256(payload).digest() != digest:
        raise _bad(path, "corrupted: the payload does not match its SHA-256", "EBADMSG")
    records = []
    off = 0
    while off < len(payload):
        if off + RECORD.size > len(payload):
            raise _bad(path, f"record at payload offset {off} is cut short", "EBADMSG")
        kind, n = RECORD.unpack_from(payload, off)
        off += RECORD.size
        if off + n > len(payload):
            raise _bad(path, f"record at payload offset {off} is cut short", "EBADMSG")
        records.append((kind, payload[off:off + n]))
        off += n
    if len(records) != nrec or not records or records[-1][0] != END:
        raise _bad(path, f"corrupted: {len(records)} records ending in kind "
                         f"{records[-1][0] if records else None}; the header says {nrec}, "
                         f"ending in END", "EBADMSG")
    if records[0][0] != CONFIG:
        raise _bad(path, "the first record is not CONFIG")
    cfg = _json(records[0][1], path, "CONFIG")
    out = {"config": _check_config(cfg, path), "pages": [], "vcpus": {}}
    for kind, body in records[1:-1]:
        if kind == PAGE:
            out["pages"].append(_check_page(body, out["config"], path))
        elif kind == VCPU:
            v = _check_vcpu(_json(body, path, "VCPU"), out["config"], path)
            if v["index"] in out["vcpus"]:
                raise _bad(path, f"vCPU {v['index']} appears twice")
            out["vcpus"][v["index"]] = v
        else:
            raise _bad(path, f"unknown record kind {kind}")
    if len(out["vcpus"]) != out["config"]["vcpus"]:
        raise _bad(path, f"CONFIG has {out['config']['vcpus']} vCPUs, the file "
                         f"{len(out['vcpus'])}")
    return out


def _json(body: bytes, path: str, what: str):
    try:
        return json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise _bad(path, f"{what} record is not JSON ({e})") from None


def _check_config(cfg, path: str) -> dict:
    if not isinstance(cfg, dict):
        raise _bad(path, "CONFIG is not an object")
    need = {"mte", "tcf", "vcpus", "tags", "memslots", "boot"}
    if set(cfg) != need:
        raise _bad(path, f"CONFIG keys {sorted(cfg)}; expected {sorted(need)}")
    if not isinstance(cfg["mte"], bool):
        raise _bad(path, "CONFIG mte must be true or false")
    if cfg["tcf"] not in (0, 1, 2, 3):
        raise _bad(path, f"CONFIG tcf {cfg['tcf']!r} is not 0..3")
    if not isinstance(cfg["vcpus"], int) or not 0 <= cfg["vcpus"] <= 64:
        raise _bad(path, f"CONFIG vcpus {cfg['vcpus']!r} is not 0..64")
    if cfg["tags"] not in TAG_MODES + (None,):
        raise _bad(path, f"CONFIG tags {cfg['tags']!r} is not a tag mode")
    if not isinstance(cfg["memslots"], list):
        raise _bad(path, "CONFIG memslots is not a list")
    for i, s in enumerate(cfg["memslots"]):
        if not isinstance(s, dict) or set(s) != {"ipa", "size", "backing", "prot_mte",
                                                 "readonly"}:
            raise _bad(path, f"CONFIG memslot {i} is malformed")
        _int(s["ipa"], f"memslot {i} ipa", path)
        _int(s["size"], f"memslot {i} size", path)
        if s["backing"] not in ("anon", "shared", "file", "device"):
            raise _bad(path, f"memslot {i} backing {s['backing']!r} is unknown")
        if not isinstance(s["prot_mte"], bool) or not isinstance(s["readonly"], bool):
            raise _bad(path, f"memslot {i} flags are not true/false")
    boot = cfg["boot"]
    if boot is not None:
        if not isinstance(boot, dict) or set(boot) != {"profile", "entry", "text_end",
                                                        "symbols", "regs", "stack_top"}:
            raise _bad(path, "CONFIG boot is malformed")
        if boot["profile"] not in ("snippet", "virt"):
            raise _bad(path, f"CONFIG boot profile {boot['profile']!r} is unknown")
        for k in ("entry", "text_end", "stack_top"):
            _int(boot[k], f"boot {k}", path)
        for what in ("symbols", "regs"):
            if not isinstance(boot[what], dict):
                raise _bad(path, f"CONFIG boot {what} is not an object")
            for name, v in boot[what].items():
                _int(v, f"boot {what} {name}", path)
        if set(boot["regs"]) - set(REGISTERS):
            raise _bad(path, f"CONFIG boot names unknown registers "
                             f"{sorted(set(boot['regs']) - set(REGISTERS))}")
    return cfg


def _check_page(body: bytes, cfg: dict, path: str) -> Tuple[int, bytes, Optional[bytes]]:
    if len(body) not in (8 + PAGE_SIZE + 1, 8 + PAGE_SIZE + 1 + GRANULES):
        raise _bad(path, f"a PAGE record is {len(body)} bytes", "EBADMSG")
    ipa = struct.unpack_from("<Q", body)[0]
    has = body[8 + PAGE_SIZE]
    if has not in (0, 1) or (has == 1) != (len(body) == 8 + PAGE_SIZE + 1 + GRANULES):
        raise _bad(path, f"the PAGE record for {ipa:#x} has a bad tag flag", "EBADMSG")
    if ipa % PAGE_SIZE or not any(s["ipa"] <= ipa < s["ipa"] + s["size"] and
                                  s["backing"] != "device" for s in cfg["memslots"]):
        raise _bad(path, f"a PAGE record at {ipa:#x} is outside every RAM memslot")
    tags = body[8 + PAGE_SIZE + 1:] if has else None
    if tags is not None and any(t > 15 for t in tags):
        raise _bad(path, f"the PAGE record for {ipa:#x} has a tag above 15")
    return ipa, body[8:8 + PAGE_SIZE], tags


def _check_vcpu(v, cfg: dict, path: str) -> dict:
    if not isinstance(v, dict) or set(v) != {"index", "regs", "rng", "text_end"}:
        raise _bad(path, "a VCPU record is malformed")
    if not isinstance(v["index"], int) or not 0 <= v["index"] < cfg["vcpus"]:
        raise _bad(path, f"VCPU index {v['index']!r} is out of range")
    regs = v["regs"]
    if not isinstance(regs, dict) or set(regs) != set(REGISTERS):
        raise _bad(path, f"VCPU {v['index']} does not hold exactly the vCPU's registers")
    return {"index": v["index"],
            "regs": {k: _int(val, f"register {k}", path, 128 if k.startswith("v") else 64)
                     for k, val in regs.items()},
            "rng": _int(v["rng"], "rng", path), "text_end": _int(v["text_end"], "text_end", path)}


def restore(path: str, host=None):
    """A new VM from a migration file (checked first: a bad file creates nothing)."""
    from .loader import Boot
    from .vm import Vm, _LoaderAccess
    state = parse(path)
    cfg = state["config"]
    tcf_name = {0: "none", 1: "sync", 2: "async", 3: "asymm"}[cfg["tcf"]]
    vm = Vm(mte=cfg["mte"], host=host, tcf=tcf_name)
    try:
        for s in cfg["memslots"]:
            vm.add_memslot(s["ipa"], s["size"], s["backing"], prot_mte=s["prot_mte"],
                           readonly=s["readonly"])
        if cfg["boot"] is not None:
            b = cfg["boot"]
            vm.boot = Boot(b["profile"], b["entry"], b["text_end"], dict(b["symbols"]),
                           dict(b["regs"]), b["stack_top"])
        writer = _LoaderAccess(vm)
        for ipa, data, tags in state["pages"]:
            writer.write(ipa, data)
            if tags is not None and vm.mte:
                vm.copy_tags(ipa, PAGE_SIZE, tags, to_guest=True)
        for i in range(cfg["vcpus"]):
            v = state["vcpus"][i]
            vcpu = vm.create_vcpu()
            vcpu.ctx.update(v["regs"])
            vcpu.rng = v["rng"]
            vcpu.text_end = v["text_end"]
    except KvmError:
        vm.destroy()
        raise
    return vm
