/* The state the native hot paths share with Python.
 *
 * `core_t` is mirrored field for field by `aarch64mte.machine.native.Core` (a ctypes
 * Structure): Python owns it, fills in the libunicorn entry points and the slow-path callbacks,
 * and reads and writes the same fields (MTE registers, counters, the soft TLB) whether or not
 * this library is loaded. Nothing here links against libunicorn: its functions arrive as
 * pointers in `uc_api_t`.
 *
 * The rule every native path follows: finish the common case completely, or change nothing and
 * hand the event to Python, which then does all of it (faults, traps, misses, watches).
 */
#ifndef AARCH64MTE_CORE_H
#define AARCH64MTE_CORE_H

#include <stdint.h>
#include <stddef.h>
#include <unicorn/unicorn.h>

typedef struct {
    uc_err (*reg_read)(uc_engine *, int, void *);
    uc_err (*reg_write)(uc_engine *, int, const void *);
    uc_err (*reg_write_batch)(uc_engine *, int const *, void *const *, int);
    uc_err (*vmem_read)(uc_engine *, uint64_t, uc_prot, void *, size_t);
    uc_err (*emu_stop)(uc_engine *);
} uc_api_t;

#define CORE_MAX_REGIONS 4
/* RAM regions: the guest's data bytes and their allocation tags (one byte, 0..15, per 16-byte
 * granule), and one byte per 1 KiB engine page that is set while the engine maps that page
 * without the tag-check hook (its "fast" mapping relies on the tags staying as they are). */
typedef struct {
    uint64_t base, size;
    uint8_t *host;
    uint8_t *tags;
    uint8_t *fast;
} region_t;

/* One-entry-per-slot soft TLB for the tag accesses of MTE instructions (filled by Python's
 * translation, dropped with every other translation-derived state). */
#define STLB_N 64
#define STLB_TAGGED 1        /* Tagged memory and tag access enabled: tags are read/written */
#define STLB_RAM 2           /* the page is RAM (data bytes are host memory) */
typedef struct {
    uint64_t mask, key;      /* the entry serves va when (va & mask) == key */
    uint64_t el;
    uint64_t pa;             /* PA of the 4 KiB page */
    uint64_t flags;
} stlb_t;

/* Where the code the engine fetches is in host memory, by 4 KiB VA page (filled by Python's TLB
 * fill for instruction fetches). The tag check reads the accessing instruction through it: a
 * memory hook must not use the engine's own TLB (uc_vmem_read may refill the entry the access
 * in progress is about to use). */
#define CTLB_N 64
typedef struct {
    uint64_t key;            /* VA page | 1 */
    uint8_t *host;           /* the page's bytes */
} ctlb_t;

/* Translations the TLB fill has made (filled by Python's walk, for data accesses), by 4 KiB VA
 * page with the top byte handled as TBI says: the same page through pointers with other tags
 * fills again (the engine's TLB holds one entry per tagged address) without another walk. */
#define TC_N 256
#define TC_RAM 1
#define TC_TAGGED 2          /* Normal Tagged memory, as the walk's attributes say */
typedef struct {
    uint64_t key;            /* VA page (top byte per TBI) | 1 */
    uint64_t el;
    uint64_t pa;             /* PA of the 4 KiB page */
    uint64_t perms;
    uint64_t flags;
} tcache_t;

/* What the tag check needs to know of a load/store encoding (filled by Python on a miss). */
#define WI_VALID 1           /* a load/store the check understands */
#define WI_CHECKED 2         /* DecodeTagChecked: not SP + immediate without writeback, ... */
#define WI_POST 4            /* post-index: the first access is at the base */
#define WI_INDEX_W 8         /* the index is a W register */
#define WI_INDEX_SIGNED 16   /* SXTW/SXTX */
#define WI_HAS_INDEX 32
#define WI_RMW 64            /* atomic read-modify-write: its check is a read's */
#define WINFO_N 1024
typedef struct {
    uint32_t word;
    uint8_t filled;
    uint8_t flags;
    uint8_t base;            /* register number, 31 = SP */
    uint8_t index;
    uint8_t shift;
    uint8_t fp;              /* bytes the instruction accesses (its footprint) */
    uint16_t pad;
    int64_t disp;
} winfo_t;

typedef void (*py_check_fn)(uc_engine *, int, uint64_t, int);
typedef void (*py_intr_fn)(uc_engine *, uint32_t, void *);
typedef int (*py_winfo_fn)(uint32_t, winfo_t *);
typedef int64_t (*py_fetch_fn)(uint64_t);
typedef bool (*py_fill_fn)(uc_engine *, uint64_t, int, uc_tlb_entry *, void *);
typedef void (*py_event_fn)(int);

#define EVENT_TAGS_OF_FAST_PAGE 1   /* tags changed on a page mapped without the check hook */

typedef struct {
    uc_api_t api;
    /* instructions counted per executed block (UC_HOOK_BLOCK) */
    uint64_t insns, last_addr, last_size, limit, hit_limit;
    /* memory */
    uint64_t nregions;
    region_t regions[CORE_MAX_REGIONS];
    /* MTE system registers and PSTATE.TCO (the architectural values; Python reads these) */
    uint64_t gcr, rgsr, tfsr_el1, tfsre0_el1, tfsr_el2, tco, gmid_bs, dczid_bytes, rng;
    /* per EL, from the translation regime (refreshed by Python whenever it may change) */
    uint8_t tag_access[4];       /* AllocationTagAccessIsEnabled(el) */
    uint8_t sysreg_direct[4];    /* MRS/MSR of GCR/RGSR/TFSR/TFSRE0_EL1 need no trap here */
    uint8_t gmid_direct[4];      /* MRS GMID_EL1 needs no trap here */
    uint8_t dc_direct[4];        /* DC GVA/GZVA need no trap here */
    uint8_t tbi[4][2];           /* TBI per EL and VA bit 55 */
    uint8_t tcma[4][2];          /* TCMA per EL and VA bit 55 */
    uint8_t tcf[4];              /* TCF per EL (0: no checks) */
    uint8_t pad[4];
    uint64_t regime_valid;       /* 0: the fields above are out of date (Python refreshes) */
    uint64_t fast_traps;         /* 0: every MTE instruction goes to Python */
    uint64_t fast_fills;         /* 0: every TLB fill goes to Python (watches) */
    uint64_t check_hooked;       /* the tag-check hook exists */
    uint64_t refuse_fills;       /* an instruction must fault in its own TLB fill (DC ZVA) */
    uint64_t in_fault;           /* a synchronous fault is being delivered: check nothing */
    stlb_t stlb[2][STLB_N];      /* [write] */
    ctlb_t ctlb[CTLB_N];
    tcache_t tcache[2][TC_N];    /* [write] */
    /* tag check: the instruction instance checked last (block count, block, PC) */
    uint64_t inst_insns, inst_blk, inst_pc;
    winfo_t winfo[WINFO_N];
    /* slow paths (Python) */
    py_check_fn py_check;
    py_intr_fn py_intr;
    py_winfo_fn py_winfo;
    py_event_fn py_event;
    py_fetch_fn py_fetch;        /* the word at a PC the code TLB does not hold, or -1 */
    py_fill_fn py_fill;          /* the whole TLB fill, in Python */
    /* counters (Python adds them to Machine.counters) */
    uint64_t tag_checks, checked_granules_read, checked_granules_written;
    uint64_t mte_insns, tag_granules_read, tag_granules_written, insn_bytes_written;
    uint64_t native_checks, native_traps, native_fills;
    uint64_t fast_touched;       /* the MTE instruction changed a tag on a fast page */
    /* tag provenance (provenance.h): the last write of each granule's allocation tag and a
     * ring of the most recent writes, in memory aarch64mte/machine/provenance.py owns */
    uint64_t prov_on;            /* record tag writes */
    uint64_t prov_seq;           /* tag writes recorded so far: the last one's number */
    uint64_t prov_mask;          /* ring entries - 1 (a power of two less one) */
    uint64_t *prov_ring;         /* 4 words an entry: seq, pa, pc, meta */
    uint64_t *prov_last[CORE_MAX_REGIONS];  /* per region, 2 words a granule: pc, meta */
    uint64_t prov_pc, prov_meta; /* the MTE instruction being run: its PC, kind and EL in meta */
} core_t;

#define ALIAS_SHIFT 40
#define ALIAS_FLAG (1ULL << 44)
#define PA_MASK ((1ULL << ALIAS_SHIFT) - 1)
#define MASK56 0x00FFFFFFFFFFFFFFULL

/* The instruction word at pc through the code TLB; -1 where it does not hold the page. */
static inline int64_t code_word(core_t *c, uint64_t pc)
{
    const ctlb_t *ct = &c->ctlb[(pc >> 12) & (CTLB_N - 1)];
    if (ct->key != ((pc & ~0xfffULL) | 1))
        return -1;
    uint32_t w;
    __builtin_memcpy(&w, ct->host + (pc & 0xfff), 4);
    return w;
}

static inline region_t *core_region(core_t *c, uint64_t pa, uint64_t n)
{
    for (uint64_t i = 0; i < c->nregions; i++) {
        region_t *r = &c->regions[i];
        if (pa >= r->base && pa + n <= r->base + r->size)
            return r;
    }
    return NULL;
}

/* Unicorn register id of X<n> (n < 31); 31 is SP or XZR by context. */
static inline int xreg_id(unsigned n)
{
    if (n < 29)
        return UC_ARM64_REG_X0 + n;
    return n == 29 ? UC_ARM64_REG_X29 : UC_ARM64_REG_X30;
}

static inline uint64_t read_x(core_t *c, uc_engine *uc, unsigned n)
{
    uint64_t v = 0;
    if (n == 31)
        return 0;
    c->api.reg_read(uc, xreg_id(n), &v);
    return v;
}

static inline uint64_t read_x_or_sp(core_t *c, uc_engine *uc, unsigned n)
{
    uint64_t v = 0;
    c->api.reg_read(uc, n == 31 ? UC_ARM64_REG_SP : xreg_id(n), &v);
    return v;
}

static inline void write_pc(core_t *c, uc_engine *uc, uint64_t pc)
{
    /* batched: a plain PC write would leave memory hooks with a stale PC (see Engine.set_pc) */
    int id = UC_ARM64_REG_PC;
    void *p = &pc;
    c->api.reg_write_batch(uc, &id, &p, 1);
}

#endif
