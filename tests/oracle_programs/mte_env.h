/* Shared helpers for the bare-metal oracle programs: semihosting output, a tagged identity map
 * of RAM, and an exception handler that counts tag-check faults and resumes after them.
 * Used with /work/shared-style start.S and link.ld (RAM at 0x40080000, EL1). */
#include <stdint.h>
typedef uint64_t u64;

#define SYSREG_W(name, v) asm volatile("msr " #name ", %0\n isb" :: "r"((u64)(v)) : "memory")
#define SYSREG_R(name) ({ u64 _v; asm volatile("mrs %0, " #name : "=r"(_v) :: "memory"); _v; })

static long semi(long op, const void *arg) {
    register long x0 asm("x0") = op;
    register const void *x1 asm("x1") = arg;
    asm volatile("hlt #0xf000" : "+r"(x0) : "r"(x1) : "memory");
    return x0;
}
static void put(const char *s) { semi(0x04, s); }                        /* SYS_WRITE0 */
void semihost_exit(int code) { u64 b[2] = { 0x20026, (u64)code }; semi(0x18, b); }

static void puthex(u64 v, int digits) {
    char buf[20];
    int i;
    buf[0] = '0'; buf[1] = 'x';
    for (i = 0; i < digits; i++) {
        int d = (v >> (4 * (digits - 1 - i))) & 15;
        buf[2 + i] = d < 10 ? '0' + d : 'a' + d - 10;
    }
    buf[2 + digits] = 0;
    put(buf);
}
static void putnib(u64 v) { char b[2] = { "0123456789abcdef"[v & 15], 0 }; put(b); }
static void show(const char *what, u64 v) { put(what); put(" = "); puthex(v, 16); put("\n"); }

static int fails;
static void check(const char *what, int ok) { put(ok ? "PASS " : "FAIL "); put(what); put("\n"); fails += !ok; }

static volatile u64 last_esr, last_far, nexc;
u64 exc_handler(u64 esr, u64 far, u64 elr, u64 kind) {    /* called from start.S vectors */
    if (kind != 4) semihost_exit(100);
    nexc++; last_esr = esr; last_far = far;
    return elr + 4;                                       /* resume after the faulting access */
}

static u64 l1[512] __attribute__((aligned(4096)));

/* Identity map: 0-1 GiB Device, RAM (1-2 GiB) Normal Tagged; TBI0; SCTLR_EL1 with M C I ATA
 * and the given TCF (0 none, 1 sync, 2 async, 3 asymmetric). */
static void mte_setup(u64 tcf) {
    l1[0] = 0x00000000UL | (1UL << 10) | (1 << 2) | 1;
    l1[1] = 0x40000000UL | (1UL << 10) | (3 << 8) | (0 << 2) | 1;
    asm volatile("dsb sy" ::: "memory");
    SYSREG_W(MAIR_EL1, 0xf0UL | (0x00UL << 8));
    SYSREG_W(TCR_EL1, 25 | (1 << 8) | (1 << 10) | (3 << 12) | (1UL << 23) | (2UL << 32) | (1UL << 37));
    SYSREG_W(TTBR0_EL1, (u64)l1);
    asm volatile("tlbi vmalle1\n dsb sy\n isb" ::: "memory");
    SYSREG_W(SCTLR_EL1, 0x30d00800UL | 1 | (1 << 2) | (1 << 12) | (1UL << 43) | (tcf << 40));
}

static inline u64 with_tag(const void *p, u64 tag) { return ((u64)p & ~(0xfUL << 56)) | (tag << 56); }
static inline void stg(u64 p) { asm volatile("stg %0, [%0]" :: "r"(p) : "memory"); }
static inline u64 ldg_tag(const void *p) {
    u64 t = (u64)p;
    asm volatile("ldg %0, [%0]" : "+r"(t) :: "memory");
    return (t >> 56) & 15;
}
