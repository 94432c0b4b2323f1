/* MTE instructions without Python: the engine's interrupt hook.
 *
 * Unicorn has no MTE: every MTE instruction is UNDEFINED to it and arrives here (intno 1) with
 * PC at the instruction. The common cases are finished here, transcribed from the same Arm ARM
 * Operation sections as aarch64mte/semantics/execute.py (whose function names the C functions
 * echo). A case that would fault, trap, miss the soft TLB, or touch anything but RAM changes
 * nothing and goes to Python (`py_intr`), which runs the full semantics; so does every other
 * interrupt (SVC, BRK, HVC, UNDEFINED words, semihosting).
 */
#include <string.h>
#include "core.h"
#include "mte_isa.h"
#include "provenance.h"

typedef struct {
    uint32_t word;
    uint8_t valid, op, form;
    int8_t sysreg;
    uint8_t d, n, m, t, t2, tag_offset, imm;
    int64_t offset;
} insn_t;

#define DECODE_N 256
static __thread insn_t decode_cache[DECODE_N];

static int decode_word(uint32_t w, insn_t *in)
{
    for (size_t i = 0; i < MTE_NFORMS; i++) {
        const mte_form_t *f = &MTE_FORMS[i];
        if ((w & f->mask) != f->fixed)
            continue;
        in->op = f->op;
        in->form = f->form;
        in->sysreg = -1;
        in->d = in->n = in->m = in->t = in->t2 = 31;
        in->offset = 0;
        in->tag_offset = in->imm = 0;
        for (int k = 0; k < f->nfields; k++) {
            const mte_field_t *fd = &f->fields[k];
            uint32_t raw = (w >> fd->lo) & ((1u << fd->width) - 1);
            if (fd->is_sysreg) {
                int id = -1;
                for (size_t j = 0; j < MTE_NSYSREGS; j++)
                    if (MTE_SYSREGS[j].field15 == raw)
                        id = MTE_SYSREGS[j].id;
                if (id < 0)
                    return 0;               /* MRS/MSR of a register that is not MTE's */
                in->sysreg = (int8_t)id;
                continue;
            }
            int64_t v = raw;
            if (fd->is_signed && (raw >> (fd->width - 1)))
                v -= (int64_t)1 << fd->width;
            v *= fd->scale;
            switch (fd->field) {
            case F_D: in->d = (uint8_t)v; break;
            case F_N: in->n = (uint8_t)v; break;
            case F_M: in->m = (uint8_t)v; break;
            case F_T: in->t = (uint8_t)v; break;
            case F_T2: in->t2 = (uint8_t)v; break;
            case F_OFFSET: in->offset = v; break;
            case F_TAG_OFFSET: in->tag_offset = (uint8_t)v; break;
            case F_IMM: in->imm = (uint8_t)v; break;
            default: break;
            }
        }
        return 1;
    }
    return 0;
}

static const insn_t *decode(uint32_t w)
{
    insn_t *e = &decode_cache[(uint32_t)(w * 2654435761u) >> 24];
    if (e->word != w || !e->valid) {
        insn_t in;
        if (!decode_word(w, &in))
            return NULL;
        in.word = w;
        in.valid = 1;
        *e = in;
    }
    return e;
}

/* --- pseudocode helpers ------------------------------------------------------------------ */
static inline unsigned AllocationTagFromAddress(uint64_t a) { return (unsigned)(a >> 56) & 0xf; }

static inline uint64_t AddressWithAllocationTag(uint64_t a, unsigned tag)
{
    return (a & ~(0xfULL << 56)) | ((uint64_t)(tag & 0xf) << 56);
}

static unsigned ChooseNonExcludedTag(unsigned tag, unsigned offset, unsigned exclude)
{
    tag &= 0xf;
    offset &= 0xf;
    exclude &= 0xffff;
    if (exclude == 0xffff)
        return 0;
    if (offset == 0)
        while ((exclude >> tag) & 1)
            tag = (tag + 1) & 0xf;
    while (offset) {
        offset--;
        tag = (tag + 1) & 0xf;
        while ((exclude >> tag) & 1)
            tag = (tag + 1) & 0xf;
    }
    return tag;
}

/* RandomTag(): four NextRandomTagBit() steps of the RGSR_EL1.SEED LFSR, the first in bit 0. */
static unsigned RandomTag(uint64_t *seed)
{
    unsigned tag = 0;
    uint64_t s = *seed & 0xffff;
    for (int i = 0; i < 4; i++) {
        unsigned top = (unsigned)((s >> 5) ^ (s >> 3) ^ (s >> 2) ^ s) & 1;
        s = ((uint64_t)top << 15) | (s >> 1);
        tag |= top << i;
    }
    *seed = s;
    return tag;
}

/* The seeded source behind ChooseRandomNonExcludedTag (GCR_EL1.RRND = 1): xorshift64, the same
 * sequence as CpuView.random_tag. */
static unsigned random4(core_t *c)
{
    uint64_t x = c->rng;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    c->rng = x;
    return (unsigned)x & 0xf;
}

static inline int64_t sext56(uint64_t v)
{
    return (int64_t)(v << 8) >> 8;
}

/* --- registers --------------------------------------------------------------------------- */
static inline void write_x(core_t *c, uc_engine *uc, unsigned n, uint64_t v)
{
    if (n != 31)
        c->api.reg_write(uc, xreg_id(n), &v);
}

static inline void write_x_or_sp(core_t *c, uc_engine *uc, unsigned n, uint64_t v)
{
    c->api.reg_write(uc, n == 31 ? UC_ARM64_REG_SP : xreg_id(n), &v);
}

/* The base of a load/store: SP[] when n == 31, where CheckSPAlignment may fault (Python). */
static inline int base_address(core_t *c, uc_engine *uc, unsigned n, uint64_t *out)
{
    *out = read_x_or_sp(c, uc, n);
    return n != 31 || (*out & 0xf) == 0;
}

/* --- tag and data accesses through the soft TLB ------------------------------------------ */
static inline const stlb_t *stlb(core_t *c, uint64_t va, int write, unsigned el)
{
    const stlb_t *e = &c->stlb[write][(va >> 12) & (STLB_N - 1)];
    if (e->mask && (va & e->mask) == e->key && e->el == el)
        return e;
    return NULL;
}

static inline uint8_t *tag_slot(core_t *c, const stlb_t *e, uint64_t va, region_t **rr)
{
    if (!(e->flags & STLB_TAGGED))
        return NULL;
    uint64_t pa = e->pa | (va & 0xff0);
    region_t *r = core_region(c, pa, 16);
    if (!r)
        return NULL;
    if (rr)
        *rr = r;
    return &r->tags[(pa - r->base) >> 4];
}

static inline uint8_t *data_ptr(core_t *c, const stlb_t *e, uint64_t va, uint64_t n)
{
    if (!(e->flags & STLB_RAM))
        return NULL;
    uint64_t pa = e->pa | (va & 0xfff);
    region_t *r = core_region(c, pa, n);
    return r ? r->host + (pa - r->base) : NULL;
}

static void write_tag(core_t *c, uint8_t *slot, region_t *r, unsigned tag)
{
    if (c->prov_on)
        prov_record(c, r, slot, tag);
    if (*slot != tag) {
        uint64_t p = (uint64_t)(slot - r->tags) >> 6;       /* 1 KiB page within the region */
        if (r->fast[p] || (p > 0 && r->fast[p - 1]))
            c->fast_touched = 1;
        *slot = (uint8_t)tag;
    }
    c->tag_granules_written++;
}

/* --- the instructions -------------------------------------------------------------------- */
static int execute_IRG(core_t *c, uc_engine *uc, const insn_t *in, unsigned el)
{
    uint64_t operand = read_x_or_sp(c, uc, in->n);
    unsigned exclude = (unsigned)((read_x(c, uc, in->m) | c->gcr) & 0xffff);
    unsigned rtag = 0;
    if (c->tag_access[el]) {
        if (c->gcr & (1u << 16)) {
            unsigned r4 = random4(c);
            rtag = exclude == 0xffff ? 0 : ChooseNonExcludedTag(r4, 0, exclude);
        } else {
            uint64_t seed = (c->rgsr >> 8) & 0xffff;
            unsigned offset = RandomTag(&seed);
            rtag = ChooseNonExcludedTag((unsigned)c->rgsr & 0xf, offset, exclude);
            c->rgsr = (seed << 8) | rtag;
        }
    }
    write_x_or_sp(c, uc, in->d, AddressWithAllocationTag(operand, rtag));
    return 1;
}

static int execute_GMI(core_t *c, uc_engine *uc, const insn_t *in)
{
    uint64_t address = read_x_or_sp(c, uc, in->n);
    uint64_t mask = read_x(c, uc, in->m);
    write_x(c, uc, in->d, mask | (1ULL << AllocationTagFromAddress(address)));
    return 1;
}

static int execute_ADDG_SUBG(core_t *c, uc_engine *uc, const insn_t *in, unsigned el, int sign)
{
    uint64_t operand1 = read_x_or_sp(c, uc, in->n);
    unsigned rtag = 0;
    if (c->tag_access[el])
        rtag = ChooseNonExcludedTag(AllocationTagFromAddress(operand1), in->tag_offset,
                                    (unsigned)c->gcr & 0xffff);
    uint64_t result = sign > 0 ? operand1 + (uint64_t)in->offset : operand1 - (uint64_t)in->offset;
    write_x_or_sp(c, uc, in->d, AddressWithAllocationTag(result, rtag));
    return 1;
}

static int execute_SUBP(core_t *c, uc_engine *uc, const insn_t *in, int setflags)
{
    uint64_t a = (uint64_t)sext56(read_x_or_sp(c, uc, in->n));
    uint64_t b = (uint64_t)sext56(read_x_or_sp(c, uc, in->m));
    uint64_t result = a - b;                       /* AddWithCarry(a, NOT(b), 1) */
    if (setflags) {
        uint64_t n = result >> 63, z = result == 0, cflag = a >= b;
        uint64_t v = ((a ^ b) & (a ^ result)) >> 63;
        uint64_t nzcv = ((n << 3) | (z << 2) | (cflag << 1) | v) << 28;
        c->api.reg_write(uc, UC_ARM64_REG_NZCV, &nzcv);
    }
    write_x(c, uc, in->d, result);
    return 1;
}

static int execute_LDG(core_t *c, uc_engine *uc, const insn_t *in, unsigned el)
{
    uint64_t address;
    if (!base_address(c, uc, in->n, &address))
        return 0;
    address = (address + (uint64_t)in->offset) & ~0xfULL;
    const stlb_t *e = stlb(c, address, 0, el);
    if (!e)
        return 0;
    unsigned tag = 0;
    uint8_t *slot = tag_slot(c, e, address, NULL);
    if (slot) {
        tag = *slot;
        c->tag_granules_read++;
    }
    if (in->t != 31)
        write_x(c, uc, in->t, AddressWithAllocationTag(read_x(c, uc, in->t), tag));
    return 1;
}

static int indexed_address(core_t *c, uc_engine *uc, const insn_t *in, uint64_t *address)
{
    uint64_t a;
    if (!base_address(c, uc, in->n, &a))
        return 0;
    if (in->form != FORM_POST)
        a += (uint64_t)in->offset;
    *address = a;
    return (a & 0xf) == 0;                          /* else an Alignment fault: Python */
}

static void indexed_writeback(core_t *c, uc_engine *uc, const insn_t *in, uint64_t address)
{
    if (in->form == FORM_POST)
        write_x_or_sp(c, uc, in->n, address + (uint64_t)in->offset);
    else if (in->form == FORM_PRE)
        write_x_or_sp(c, uc, in->n, address);
}

/* STG, STZG, ST2G, STZ2G */
static int store_tag_op(core_t *c, uc_engine *uc, const insn_t *in, unsigned el, int granules,
                        int zero)
{
    unsigned tag = AllocationTagFromAddress(read_x_or_sp(c, uc, in->t));
    uint64_t address;
    if (!indexed_address(c, uc, in, &address))
        return 0;
    const stlb_t *e[2];
    uint8_t *data[2] = {NULL, NULL};
    for (int i = 0; i < granules; i++) {
        uint64_t a = address + 16 * (uint64_t)i;
        e[i] = stlb(c, a, 1, el);
        if (!e[i])
            return 0;
        if (zero && !(data[i] = data_ptr(c, e[i], a, 16)))
            return 0;
    }
    for (int i = 0; i < granules; i++) {
        uint64_t a = address + 16 * (uint64_t)i;
        if (zero) {
            for (int k = 0; k < 16; k++)
                data[i][k] = 0;
            c->insn_bytes_written += 16;
        }
        region_t *r;
        uint8_t *slot = tag_slot(c, e[i], a, &r);
        if (slot)
            write_tag(c, slot, r, tag);
    }
    indexed_writeback(c, uc, in, address);
    return 1;
}

static int execute_STGP(core_t *c, uc_engine *uc, const insn_t *in, unsigned el)
{
    uint64_t address;
    if (!indexed_address(c, uc, in, &address))
        return 0;
    const stlb_t *e = stlb(c, address, 1, el);
    if (!e)
        return 0;
    uint8_t *data = data_ptr(c, e, address, 16);
    if (!data)
        return 0;
    uint64_t lo = read_x(c, uc, in->t), hi = read_x(c, uc, in->t2);
    for (int k = 0; k < 8; k++) {
        data[k] = (uint8_t)(lo >> (8 * k));
        data[8 + k] = (uint8_t)(hi >> (8 * k));
    }
    c->insn_bytes_written += 16;
    region_t *r;
    uint8_t *slot = tag_slot(c, e, address, &r);
    if (slot)
        write_tag(c, slot, r, AllocationTagFromAddress(address));
    indexed_writeback(c, uc, in, address);
    return 1;
}

/* LDGM, STGM (the GMID_EL1 block) and STZGM (the DCZID_EL0 block): UNDEFINED at EL0. */
static int bulk_tags(core_t *c, uc_engine *uc, const insn_t *in, unsigned el)
{
    if (el == 0)
        return 0;
    uint64_t address;
    if (!base_address(c, uc, in->n, &address))
        return 0;
    uint64_t size = in->op == OP_STZGM ? c->dczid_bytes : 4ULL << c->gmid_bs;
    address &= ~(size - 1);
    int write = in->op != OP_LDGM;
    const stlb_t *e = stlb(c, address, write, el);
    if (!e)
        return 0;
    unsigned count = (unsigned)(size / 16), index = (unsigned)(address >> 4) & 0xf;
    region_t *r = NULL;
    uint8_t *slot = tag_slot(c, e, address, &r);
    if (in->op == OP_LDGM) {
        uint64_t data = 0;
        if (slot) {
            for (unsigned i = 0; i < count; i++)
                data |= (uint64_t)(slot[i] & 0xf) << (4 * (index + i));
            c->tag_granules_read += count;
        }
        write_x(c, uc, in->t, data);
        return 1;
    }
    uint64_t xt = read_x(c, uc, in->t);
    if (in->op == OP_STZGM) {
        uint8_t *data = data_ptr(c, e, address, size);
        if (!data)
            return 0;
        for (uint64_t k = 0; k < size; k++)
            data[k] = 0;
        c->insn_bytes_written += size;
        if (slot)
            for (unsigned i = 0; i < count; i++)
                write_tag(c, slot + i, r, (unsigned)xt & 0xf);
        return 1;
    }
    if (slot)                                       /* STGM */
        for (unsigned i = 0; i < count; i++)
            write_tag(c, slot + i, r, (unsigned)(xt >> (4 * (index + i))) & 0xf);
    return 1;
}

/* DC GVA, DC GZVA: the DCZID_EL0 block holding Xt gets Xt's tag (GZVA zeroes it first). */
static int dc_set_tags(core_t *c, uc_engine *uc, const insn_t *in, unsigned el, int zero)
{
    if (!c->dc_direct[el])
        return 0;
    uint64_t value = read_x(c, uc, in->t);
    uint64_t size = c->dczid_bytes;
    uint64_t address = value & ~(size - 1);
    const stlb_t *e = stlb(c, address, 1, el);
    if (!e)
        return 0;
    uint8_t *data = NULL;
    if (zero && !(data = data_ptr(c, e, address, size)))
        return 0;
    if (zero) {
        for (uint64_t k = 0; k < size; k++)
            data[k] = 0;
        c->insn_bytes_written += size;
    }
    region_t *r;
    uint8_t *slot = tag_slot(c, e, address, &r);
    if (slot)
        for (unsigned i = 0; i < size / 16; i++)
            write_tag(c, slot + i, r, AllocationTagFromAddress(value));
    return 1;
}

static int execute_sysreg(core_t *c, uc_engine *uc, const insn_t *in, unsigned el, int read)
{
    uint64_t *reg = NULL, mask = 0;
    switch (in->sysreg) {
    case SR_TCO:
        if (read) {
            write_x(c, uc, in->t, (c->tco & 1) << 25);
            return 1;
        }
        return ((read_x(c, uc, in->t) >> 25) & 1) == c->tco;   /* a change: Python */
    case SR_GCR_EL1: reg = &c->gcr; mask = 0x1ffff; break;
    case SR_RGSR_EL1: reg = &c->rgsr; mask = 0xffff0f; break;
    case SR_TFSR_EL1: reg = &c->tfsr_el1; mask = 3; break;
    case SR_TFSRE0_EL1: reg = &c->tfsre0_el1; mask = 3; break;
    case SR_GMID_EL1:
        if (!read || !c->gmid_direct[el])
            return 0;
        write_x(c, uc, in->t, c->gmid_bs & 0xf);
        return 1;
    default:
        return 0;                                   /* EL2/EL3 registers and aliases: Python */
    }
    if (!c->sysreg_direct[el])
        return 0;
    if (read)
        write_x(c, uc, in->t, *reg);
    else
        *reg = read_x(c, uc, in->t) & mask;
    return 1;
}

static int execute(core_t *c, uc_engine *uc, const insn_t *in, unsigned el)
{
    switch (in->op) {
    case OP_IRG: return execute_IRG(c, uc, in, el);
    case OP_GMI: return execute_GMI(c, uc, in);
    case OP_ADDG: return execute_ADDG_SUBG(c, uc, in, el, 1);
    case OP_SUBG: return execute_ADDG_SUBG(c, uc, in, el, -1);
    case OP_SUBP: return execute_SUBP(c, uc, in, 0);
    case OP_SUBPS: return execute_SUBP(c, uc, in, 1);
    case OP_LDG: return execute_LDG(c, uc, in, el);
    case OP_STG: return store_tag_op(c, uc, in, el, 1, 0);
    case OP_STZG: return store_tag_op(c, uc, in, el, 1, 1);
    case OP_ST2G: return store_tag_op(c, uc, in, el, 2, 0);
    case OP_STZ2G: return store_tag_op(c, uc, in, el, 2, 1);
    case OP_STGP: return execute_STGP(c, uc, in, el);
    case OP_LDGM:
    case OP_STGM:
    case OP_STZGM: return bulk_tags(c, uc, in, el);
    case OP_DC_GVA: return dc_set_tags(c, uc, in, el, 0);
    case OP_DC_GZVA: return dc_set_tags(c, uc, in, el, 1);
    case OP_MSR_TCO_IMM: return in->imm == c->tco;    /* a change: Python */
    case OP_MRS: return execute_sysreg(c, uc, in, el, 1);
    case OP_MSR: return execute_sysreg(c, uc, in, el, 0);
    default:
        /* tag cache maintenance: nothing to do at EL1 and above (no caches are modelled) */
        return el != 0 && in->op >= OP_DC_CGVAC;
    }
}

void mte_intr(uc_engine *uc, uint32_t intno, void *user)
{
    core_t *c = (core_t *)user;
    if (intno == 1 && c->fast_traps && c->regime_valid) {
        uint64_t pc = 0, ps = 0;
        uint32_t w = 0;
        c->api.reg_read(uc, UC_ARM64_REG_PC, &pc);
        const ctlb_t *ct = &c->ctlb[(pc >> 12) & (CTLB_N - 1)];
        int have = 0;
        if (ct->key == ((pc & ~0xfffULL) | 1)) {
            memcpy(&w, ct->host + (pc & 0xfff), 4);
            have = 1;
        } else {
            /* an interrupt hook runs between instructions: the engine's TLB may change */
            have = c->api.vmem_read(uc, pc, UC_PROT_EXEC, &w, 4) == UC_ERR_OK;
        }
        if (have) {
            const insn_t *in = decode(w);
            if (in) {
                c->api.reg_read(uc, UC_ARM64_REG_PSTATE, &ps);
                unsigned el = (unsigned)(ps >> 2) & 3;
                uint64_t r0 = c->tag_granules_read, w0 = c->tag_granules_written;
                uint64_t b0 = c->insn_bytes_written, rng = c->rng, rgsr = c->rgsr;
                c->fast_touched = 0;
                prov_begin(c, pc, in->op, el);
                if (execute(c, uc, in, el)) {
                    c->mte_insns++;
                    c->native_traps++;
                    write_pc(c, uc, pc + 4);
                    if (c->fast_touched && c->py_event)
                        c->py_event(EVENT_TAGS_OF_FAST_PAGE);
                    return;
                }
                /* nothing was changed but these (execute bails before any state change) */
                c->tag_granules_read = r0;
                c->tag_granules_written = w0;
                c->insn_bytes_written = b0;
                c->rng = rng;
                c->rgsr = rgsr;
            }
        }
    }
    c->py_intr(uc, intno, NULL);
}
