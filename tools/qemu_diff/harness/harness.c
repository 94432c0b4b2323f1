/* Differential-test harness: runs every test of the table `tests` in turn and prints one line
 * per test describing what it did, in a form that QEMU and aarch64mte print identically when
 * they agree.
 *
 * Per test: reset the test area (two 4 KiB pages, Normal Tagged at AREA, the same RAM Untagged
 * at AREA + ALIAS) to its seeded data and tags, apply the test's pokes, set SCTLR_EL1, TCR_EL1,
 * GCR_EL1, RGSR_EL1 and clear TFSR_EL1/TFSRE0_EL1, then ERET into the body at EL1t or EL0t.
 * Each synchronous exception is recorded (ESR, FAR, ELR as an offset in the body) and the body
 * resumes at the next instruction; `svc #0x7e57` ends the body. Afterwards, back in the
 * harness's own settings (tag access on, no checks), print what differs from the initial state:
 * X registers, NZCV/TCO, SP_EL0, TFSR_EL1/TFSRE0_EL1, RGSR_EL1, the exception records, every
 * changed 8-byte word of the area (read through the Untagged alias) and every changed
 * allocation tag (read with LDG at EL1). */
#include <stdint.h>
typedef uint64_t u64;
typedef uint8_t u8;

#define AREA        0x40600000UL
#define AREA_SIZE   0x2000UL
#define ALIAS       0x40000000UL             /* Untagged alias = AREA + ALIAS */
#define GRANULES    (AREA_SIZE / 16)
#define MAX_RECORDS 16
#define END_SVC     0x7e57

#define SCTLR_HARNESS (0x30d00800UL | 1 | (1 << 2) | (1 << 12) | (1UL << 42) | (1UL << 43))
#define TCR_HARNESS   (25UL | (1 << 8) | (1 << 10) | (3 << 12) | (1UL << 23) | (2UL << 32) \
                       | (1UL << 37))
#define MAIR_HARNESS  (0xf0UL | (0xffUL << 8) | (0x00UL << 16))

struct entry { u64 x[31]; u64 sp_el0; u64 elr; u64 spsr; };
struct desc {
    u64 id, sctlr, tcr, gcr, rgsr, seed, body, body_len;
    struct entry e;
    u64 pokes[4][2];
    u8 tags[GRANULES];
};
extern const struct desc tests[];
extern const u64 tests_count;
void enter_test(const struct entry *e);

#define MSR(name, v) asm volatile("msr " #name ", %0" :: "r"((u64)(v)) : "memory")
#define MRS(name) ({ u64 _v; asm volatile("mrs %0, " #name : "=r"(_v) :: "memory"); _v; })
#define ISB() asm volatile("isb" ::: "memory")

/* ---- semihosting output ---- */
static long semi(long op, const void *arg) {
    register long x0 asm("x0") = op;
    register const void *x1 asm("x1") = arg;
    asm volatile("hlt #0xf000" : "+r"(x0) : "r"(x1) : "memory");
    return x0;
}
static void semihost_exit(u64 code) { u64 b[2] = { 0x20026, code }; semi(0x18, b); }

static char obuf[2048];
static unsigned olen;
static void flush(void) { if (olen) { obuf[olen] = 0; semi(0x04, obuf); olen = 0; } }
static void putc_(char c) { if (olen >= sizeof obuf - 2) flush(); obuf[olen++] = c; }
static void puts_(const char *s) { while (*s) putc_(*s++); }
static void puthex(u64 v) {
    char d[16];
    int n = 0;
    do { d[n++] = "0123456789abcdef"[v & 15]; v >>= 4; } while (v);
    while (n) putc_(d[--n]);
}
static void tok(char c, u64 v) { putc_(' '); putc_(c); puthex(v); }

/* ---- page tables ---- */
static u64 l1[512] __attribute__((aligned(4096)));
static u64 l2t[512] __attribute__((aligned(4096)));
static u64 l2u[512] __attribute__((aligned(4096)));
static u64 l3t[512] __attribute__((aligned(4096)));
static u64 l3u[512] __attribute__((aligned(4096)));

#define AF (1UL << 10)
#define SH (3UL << 8)
#define ATTR(i) ((u64)(i) << 2)
#define AP_EL0_RW (1UL << 6)
#define AP_RO (3UL << 6)
#define PXN (1UL << 53)
#define UXN (1UL << 54)

static void mmu_on(void) {
    unsigned i;
    l1[0] = 0x0UL | AF | ATTR(2) | PXN | UXN | 1;                 /* Device: UART */
    l1[1] = (u64)l2t | 3;
    l1[2] = (u64)l2u | 3;
    l2t[0] = 0x40000000UL | AF | SH | ATTR(1) | AP_RO | 1;        /* code and test tables */
    l2t[1] = 0x40200000UL | AF | SH | ATTR(1) | PXN | UXN | 1;    /* harness data */
    l2t[3] = (u64)l3t | 3;
    l2u[3] = (u64)l3u | 3;
    for (i = 0; i < AREA_SIZE / 4096; i++) {
        l3t[i] = (AREA + 4096 * i) | AF | SH | ATTR(0) | AP_EL0_RW | PXN | UXN | 3;
        l3u[i] = (AREA + 4096 * i) | AF | SH | ATTR(1) | AP_EL0_RW | PXN | UXN | 3;
    }
    asm volatile("dsb sy" ::: "memory");
    MSR(mair_el1, MAIR_HARNESS);
    MSR(tcr_el1, TCR_HARNESS);
    MSR(ttbr0_el1, (u64)l1);
    asm volatile("isb\n tlbi vmalle1\n dsb sy\n isb" ::: "memory");
    MSR(sctlr_el1, SCTLR_HARNESS);
    ISB();
}

static void set_regime(u64 sctlr, u64 tcr) {
    MSR(sctlr_el1, sctlr);
    MSR(tcr_el1, tcr);
    asm volatile("isb\n tlbi vmalle1\n dsb sy\n isb" ::: "memory");
}

static u64 next(u64 *s) { u64 x = *s; x ^= x << 13; x ^= x >> 7; x ^= x << 17; return *s = x; }

/* ---- running one test ---- */
static const struct desc *cur;
static u64 rec[MAX_RECORDS][3];
static unsigned nrec;
static u64 final_x[31], final_spsr, final_sp0, ended;

enum { END_SVC_SEEN = 1, END_TOO_MANY = 2, END_WILD = 4, END_EL1H = 8 };

u64 exc_handler(u64 kind, const u64 *frame, u64 esr, u64 far, u64 elr, u64 spsr, u64 sp0) {
    unsigned i;
    int end = 0;
    if (kind == 4) {
        /* A synchronous exception taken from EL1h: the body never runs there, so the PE lost
         * track of its state (an exception entry that did not complete). Record it and end
         * the test; the harness's own state is restored from harness_saved. */
        rec[nrec][0] = esr; rec[nrec][1] = far; rec[nrec][2] = elr - cur->body;
        nrec++;
        ended = END_EL1H;
        for (i = 0; i < 31; i++) final_x[i] = frame[i];
        final_spsr = spsr; final_sp0 = sp0;
        return 1;
    }
    if (kind != 0 && kind != 8) {                  /* not a sync exception from the body */
        flush();
        puts_("@HARNESS-FAULT");
        tok('k', kind); tok('e', esr); tok('f', far); tok('l', elr);
        putc_('\n'); flush();
        semihost_exit(3);
    }
    if ((esr >> 26) == 0x15 && (esr & 0xffff) == END_SVC) {
        ended = END_SVC_SEEN;
        end = 1;
    } else {
        rec[nrec][0] = esr; rec[nrec][1] = far; rec[nrec][2] = elr - cur->body;
        nrec++;
        if (elr < cur->body || elr >= cur->body + cur->body_len) { ended = END_WILD; end = 1; }
        else if (nrec == MAX_RECORDS) { ended = END_TOO_MANY; end = 1; }
        else MSR(elr_el1, elr + 4);
    }
    if (end) {
        for (i = 0; i < 31; i++) final_x[i] = frame[i];
        final_spsr = spsr; final_sp0 = sp0;
    }
    return end;
}

static void reset_area(const struct desc *d) {
    volatile u64 *p = (volatile u64 *)(AREA + ALIAS);
    u64 s = d->seed, g;
    unsigned i;
    for (i = 0; i < AREA_SIZE / 8; i++) p[i] = next(&s);
    for (i = 0; i < 4; i++)
        if (d->pokes[i][0] < AREA_SIZE) p[d->pokes[i][0] / 8] = d->pokes[i][1];
    for (g = 0; g < GRANULES; g++) {
        u64 a = (AREA + 16 * g) | ((u64)d->tags[g] << 56);
        asm volatile("stg %0, [%0]" :: "r"(a) : "memory");
    }
}

static void report(const struct desc *d, u64 tfsr1, u64 tfsr0, u64 rgsr) {
    volatile u64 *p = (volatile u64 *)(AREA + ALIAS);
    u64 s = d->seed, g, w;
    unsigned i, j;
    putc_('@'); puthex(d->id);
    tok('S', final_spsr & 0xf2000000UL);         /* NZCV and TCO */
    tok('P', final_sp0);
    tok('F', tfsr1); putc_(','); puthex(tfsr0);
    tok('R', rgsr);
    if (ended != END_SVC_SEEN) tok('!', ended);
    for (i = 0; i < 31; i++)
        if (final_x[i] != d->e.x[i]) { tok('x', i); putc_('='); puthex(final_x[i]); }
    for (i = 0; i < nrec; i++) {
        tok('e', rec[i][0]); putc_(','); puthex(rec[i][1]); putc_(','); puthex(rec[i][2]);
    }
    for (g = 0; g < GRANULES; g++) {
        u64 a = AREA + 16 * g;
        asm volatile("ldg %0, [%0]" : "+r"(a) :: "memory");
        if (((a >> 56) & 15) != d->tags[g]) { tok('t', g); putc_('='); puthex((a >> 56) & 15); }
    }
    for (i = 0; i < AREA_SIZE / 8; i++) {
        w = next(&s);
        for (j = 0; j < 4; j++)
            if (d->pokes[j][0] < AREA_SIZE && d->pokes[j][0] / 8 == i) w = d->pokes[j][1];
        if (p[i] != w) { tok('m', 8 * i); putc_('='); puthex(p[i]); }
    }
    putc_('\n');
}

static void run_one(const struct desc *d) {
    u64 tfsr1, tfsr0, rgsr;
    cur = d; nrec = 0; ended = 0;
    reset_area(d);
    MSR(gcr_el1, d->gcr);
    MSR(rgsr_el1, d->rgsr);
    MSR(tfsr_el1, 0);
    MSR(tfsre0_el1, 0);
    set_regime(d->sctlr, d->tcr);
    enter_test(&d->e);
    asm volatile("dsb sy\n isb" ::: "memory");
    tfsr1 = MRS(tfsr_el1);
    tfsr0 = MRS(tfsre0_el1);
    rgsr = MRS(rgsr_el1);
    set_regime(SCTLR_HARNESS, TCR_HARNESS);
    report(d, tfsr1, tfsr0, rgsr);
    flush();                           /* a run that dies later keeps this test's line */
}

void harness_main(void) {
    u64 i;
    mmu_on();
    puts_("@BEGIN "); puthex(tests_count); putc_('\n');
    for (i = 0; i < tests_count; i++) run_one(&tests[i]);
    puts_("@END\n");
    flush();
    semihost_exit(0);
}
