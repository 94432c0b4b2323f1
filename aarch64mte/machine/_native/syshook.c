/* The system-instruction hook (UC_HOOK_INSN, SYS): Unicorn calls it for every DC, IC, TLBI and
 * AT. Python needs only DC ZVA (a tag-checked store), TLBI (its caches follow the guest's) and
 * IC (code may be new); every other one, the MTE cache operations DC GVA/GZVA above all, goes
 * on without leaving C. */
#include "core.h"

typedef uint32_t (*py_sys_fn)(uc_engine *uc, int reg, const uc_arm64_cp_reg *cp);

typedef struct {
    py_sys_fn py_sys;
} sys_hook_t;

uint32_t mte_sys(uc_engine *uc, int reg, const uc_arm64_cp_reg *cp, void *user)
{
    const sys_hook_t *h = (const sys_hook_t *)user;
    if (cp->op0 != 1)
        return 0;
    int dc_zva = cp->op1 == 3 && cp->crn == 7 && cp->crm == 4 && cp->op2 == 1;
    int tlbi = cp->crn == 8;
    int ic = cp->crn == 7 && (cp->crm == 1 || cp->crm == 5);
    if (!(dc_zva || tlbi || ic))
        return 0;
    return h->py_sys(uc, reg, cp);
}
