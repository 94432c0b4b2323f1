/* The layout of core_t as this library was compiled, so that Python can check its ctypes
 * mirror (aarch64mte.machine.native.Core) before it lets the hooks touch the structure. */
#include "core.h"

#define F(name) offsetof(core_t, name)
static const size_t offsets[] = {
    F(api), F(insns), F(last_addr), F(last_size), F(limit), F(hit_limit), F(nregions),
    F(regions), F(gcr), F(rgsr), F(tfsr_el1), F(tfsre0_el1), F(tfsr_el2), F(tco), F(gmid_bs),
    F(dczid_bytes), F(rng), F(tag_access), F(sysreg_direct), F(gmid_direct), F(dc_direct),
    F(tbi), F(tcma), F(tcf), F(pad), F(regime_valid), F(fast_traps), F(fast_fills),
    F(check_hooked), F(refuse_fills), F(in_fault), F(stlb), F(ctlb), F(tcache), F(inst_insns),
    F(inst_blk), F(inst_pc), F(winfo), F(py_check), F(py_intr), F(py_winfo), F(py_event),
    F(py_fetch), F(py_fill), F(tag_checks), F(checked_granules_read),
    F(checked_granules_written), F(mte_insns), F(tag_granules_read), F(tag_granules_written),
    F(insn_bytes_written), F(native_checks), F(native_traps), F(native_fills), F(fast_touched),
    F(prov_on), F(prov_seq), F(prov_mask), F(prov_ring), F(prov_last), F(prov_pc), F(prov_meta),
    sizeof(core_t), sizeof(winfo_t), sizeof(stlb_t), sizeof(region_t), sizeof(ctlb_t),
    sizeof(tcache_t),
};

size_t mte_core_layout(size_t *out, size_t n)
{
    size_t count = sizeof offsets / sizeof offsets[0];
    for (size_t i = 0; i < n && i < count; i++)
        out[i] = offsets[i];
    return count;
}
