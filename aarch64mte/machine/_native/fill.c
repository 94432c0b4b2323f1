/* The engine's TLB fill (Unicorn's virtual-TLB mode), for data accesses whose page the
 * translation cache already holds.
 *
 * The engine keeps one TLB entry per tagged address: the same page through pointers with 16
 * different tags takes 16 entries in one TLB set, so code that cycles through many tags on a
 * page fills on almost every access. Each of those fills differs from a cached one only in the
 * pointer's tag, which decides one thing: the plain RAM mapping (no access through that tag
 * can fail a check there) or the alias of that tag (where the check hook sees the access).
 * That decision is made here, as TagUnit.engine_page makes it; the walk, instruction fetches,
 * faults, watches and LDTR/STTR stay with Python (`py_fill`), which also fills the cache.
 */
#include "core.h"

#define PSTATE_UAO (1ULL << 23)
#define EPAGE 1024ULL                           /* the engine's page */

static inline int unprivileged(uint32_t w)
{
    /* Load/store register (unprivileged): size 111 0 00 opc 0 imm9 10 Rn Rt */
    return (w & 0x3F200C00u) == 0x38000800u;
}

/* AccessIsTagChecked, without the per-instruction part (the check hook does that). */
static inline int checkable(const core_t *c, uint64_t va, unsigned el)
{
    unsigned upper = (unsigned)(va >> 55) & 1;
    if (c->tco || !c->tbi[el][upper] || !c->tag_access[el] || !c->tcf[el])
        return 0;
    if (c->tcma[el][upper]) {
        unsigned top = (unsigned)(va >> 55) & 0x1f;
        if (top == (upper ? 0x1fu : 0u))
            return 0;
    }
    return 1;
}

static inline int uniform(const region_t *r, uint64_t pa, uint64_t n, unsigned tag)
{
    const uint8_t *t = r->tags + ((pa - r->base) >> 4);
    for (uint64_t i = 0; i < n / 16; i++)
        if (t[i] != tag)
            return 0;
    return 1;
}

static inline void mark_fast(region_t *r, uint64_t pa)
{
    r->fast[(pa - r->base) >> 10] = 1;
}

static inline const tcache_t *lookup(const core_t *c, uint64_t va, unsigned el, int write)
{
    unsigned upper = (unsigned)(va >> 55) & 1;
    uint64_t v = va;
    if (c->tbi[el][upper])
        v = upper ? (va | 0xff00000000000000ULL) : (va & MASK56);
    uint64_t key = (v & ~0xfffULL) | 1;
    const tcache_t *t = &c->tcache[write][(v >> 12) & (TC_N - 1)];
    return t->key == key && t->el == el ? t : NULL;
}

bool mte_tlb_fill(uc_engine *uc, uint64_t vaddr, uc_mem_type type, uc_tlb_entry *e, void *user)
{
    core_t *c = (core_t *)user;
    if (c->refuse_fills)
        return false;
    if (!c->fast_fills || !c->regime_valid || type == UC_MEM_FETCH)
        return c->py_fill(uc, vaddr, (int)type, e, NULL);
    uint64_t ps = 0;
    c->api.reg_read(uc, UC_ARM64_REG_PSTATE, &ps);
    unsigned el = (unsigned)(ps >> 2) & 3;
    if (el == 1 && !(ps & PSTATE_UAO)) {
        uint64_t pc = 0;
        c->api.reg_read(uc, UC_ARM64_REG_PC, &pc);
        int64_t w = code_word(c, pc);
        if (w < 0 || unprivileged((uint32_t)w))
            return c->py_fill(uc, vaddr, (int)type, e, NULL);
    }
    int write = type == UC_MEM_WRITE;
    const tcache_t *t = lookup(c, vaddr, el, write);
    if (!t)
        return c->py_fill(uc, vaddr, (int)type, e, NULL);
    uint64_t page = t->pa | (vaddr & 0xc00);
    if ((t->flags & TC_RAM) && (t->flags & TC_TAGGED) && checkable(c, vaddr, el)) {
        region_t *r = core_region(c, page, EPAGE);
        if (!r)
            return c->py_fill(uc, vaddr, (int)type, e, NULL);
        unsigned ltag = (unsigned)(vaddr >> 56) & 0xf;
        int fast = uniform(r, page, EPAGE, ltag);
        if (fast) {
            /* an access near the end may run up to 64 bytes into the next page */
            uint64_t npage;
            region_t *nr = NULL;
            if ((vaddr & 0xc00) != 0xc00) {
                npage = page + EPAGE;
                nr = r;
            } else {
                const tcache_t *nt = lookup(c, (vaddr & ~0xfffULL) + 0x1000, el, 0);
                if (!nt) {
                    fast = 0;                   /* unknown: the checked mapping is always right */
                } else if ((nt->flags & TC_RAM) && (nt->flags & TC_TAGGED)) {
                    npage = nt->pa;
                    nr = core_region(c, npage, 64);
                    if (!nr)
                        fast = 0;
                }
            }
            if (fast && nr) {
                if (!uniform(nr, npage, 64, ltag))
                    fast = 0;
                else
                    mark_fast(nr, npage);
            }
        }
        if (fast) {
            mark_fast(r, page);
        } else {
            if (!c->check_hooked)
                return c->py_fill(uc, vaddr, (int)type, e, NULL);
            page |= ALIAS_FLAG | ((uint64_t)ltag << ALIAS_SHIFT);
        }
    }
    c->native_fills++;
    e->paddr = page;
    e->perms = (uc_prot)t->perms;
    return true;
}
