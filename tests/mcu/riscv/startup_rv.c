/* RISC-V startup for nflow's emulated-microcontroller tests: rv32 in machine mode on
   QEMU's virt board (-bios none), with picolibc. QEMU's reset code jumps to the start of
   DRAM, where virt_rv32.ld puts _start. _start sets the global pointer and the stack,
   installs the trap handler, enables the FPU when the target has one (mstatus.FS:
   without it the first float instruction is an illegal-instruction trap), then nf_rv_reset
   copies .data and .tdata from flash, zeroes .tbss and .bss, points tp at the TLS block
   (picolibc's errno lives there), locks the memory map with PMP and runs exit(main()).

   Board I/O, no semihosting: stdout and stderr go to the NS16550A UART, and _exit writes
   the status to the sifive_test device, so QEMU's exit status is main's. A trap (bad
   access, illegal instruction, stack overflow into the read-only flash) prints where
   and exits 99. Compiled with -DNF_RV_COUNT it also prints the instructions main
   executed, read from minstret: exact only under QEMU's -icount shift=0. */
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

int main(void);
void nf_rv_reset(void) __attribute__((noreturn, used));
void nf_rv_fault(void) __attribute__((noreturn, used));
void nf_rv_trap_entry(void);

/* from virt_rv32.ld */
extern uint32_t __data_load[], __data_start[], __data_end[];
extern uint32_t __tdata_load[], __tdata_start[], __tdata_end[];
extern uint32_t __zero_start[], __zero_end[];
extern char __flash_start[], __flash_end[], __ram_end[];

#define NF_RV_UART 0x10000000u   /* NS16550A: THR at +0, LSR at +5 (bit 5: THR empty) */
#define NF_RV_TEST 0x00100000u   /* sifive_test: 0x5555 = pass, status << 16 | 0x3333 = fail */

/* Zicsr is its own extension since the 2019 ISA spec; naming it here, not in -march,
   keeps the compiler on the plain rv32imac / rv32imafc multilibs. */
#define NF_RV_CSR(insn, args) ".option push\n\t.option arch, +zicsr\n\t" insn " " args "\n\t.option pop"
#define nf_rv_csr_read(csr, v) __asm__ volatile(NF_RV_CSR("csrr", "%0, " #csr) : "=r"(v))
#define nf_rv_csr_write(csr, v) __asm__ volatile(NF_RV_CSR("csrw", #csr ", %0") : : "r"(v))

static void nf_rv_uart_put(char c) {
    volatile uint8_t *u = (volatile uint8_t *)NF_RV_UART;
    while (!(u[5] & 0x20u)) {}
    u[0] = (uint8_t)c;
}
static int nf_rv_putc(char c, FILE *f) { (void)f; nf_rv_uart_put(c); return (unsigned char)c; }
static FILE nf_rv_uart = FDEV_SETUP_STREAM(nf_rv_putc, NULL, NULL, _FDEV_SETUP_WRITE);
FILE *const stdout = &nf_rv_uart;   /* picolibc: the application provides the streams */
FILE *const stderr = &nf_rv_uart;

void _exit(int status) {
    volatile uint32_t *t = (volatile uint32_t *)NF_RV_TEST;
    *t = status == 0 ? 0x5555u : ((uint32_t)status & 0xffffu) << 16 | 0x3333u;
    for (;;) {}
}

static void nf_rv_say(const char *s) { while (*s) nf_rv_uart_put(*s++); }
static void nf_rv_say_hex(uint32_t v) {
    int i;
    nf_rv_say("0x");
    for (i = 0; i < 8; ++i) nf_rv_uart_put("0123456789abcdef"[(v >> (28 - 4 * i)) & 15]);
    nf_rv_uart_put(' ');
}

/* abort() (a failed assert) raises SIGABRT, whose default action picolibc leaves to
   kill(getpid(), sig): end the run with 128 + signal, 134, as a host shell reports it. */
pid_t getpid(void) { return 1; }
int kill(pid_t pid, int sig) {
    (void)pid;
    nf_rv_say("\n*** MCU abort: signal raised\n");
    _exit(128 + sig);
}

/* Entered from nf_rv_trap_entry on a fresh stack: the old one may be what overflowed.
   Uses no libc, no globals, no TLS. */
void nf_rv_fault(void) {
    uint32_t cause, epc, tval;
    nf_rv_csr_read(mcause, cause); nf_rv_csr_read(mepc, epc); nf_rv_csr_read(mtval, tval);
    nf_rv_say("\n*** MCU FAULT mcause="); nf_rv_say_hex(cause);
    nf_rv_say("mepc="); nf_rv_say_hex(epc); nf_rv_say("mtval="); nf_rv_say_hex(tval); nf_rv_say("\n");
    _exit(99);
}
/* mtvec needs a 4-byte-aligned address (direct mode: every trap comes here) */
__attribute__((naked, aligned(4))) void nf_rv_trap_entry(void) {
    __asm__ volatile("la sp, __stack_top\n\t"
                     "j nf_rv_fault");
}

/* PMP entries apply to machine mode only when locked, and a locked entry stays until
   reset. Top-of-range regions, first match wins: devices below DRAM read/write, flash
   read/execute, RAM read/write, everything else (including DRAM past our RAM) nothing.
   The stack sits at the bottom of RAM, so overflowing it writes into flash: a trap. */
static void nf_rv_pmp_lock(void) {
    const uint32_t L = 0x80u, TOR = 0x08u, NAPOT = 0x18u, R = 1u, W = 2u, X = 4u;
    uint32_t cfg = (L | TOR | R | W) | (L | TOR | R | X) << 8 | (L | TOR | R | W) << 16 | (L | NAPOT) << 24;
    uint32_t a0 = (uint32_t)(uintptr_t)__flash_start >> 2, a1 = (uint32_t)(uintptr_t)__flash_end >> 2;
    uint32_t a2 = (uint32_t)(uintptr_t)__ram_end >> 2, all = 0xffffffffu;   /* NAPOT of all ones: the whole space */
    nf_rv_csr_write(pmpaddr0, a0); nf_rv_csr_write(pmpaddr1, a1);
    nf_rv_csr_write(pmpaddr2, a2); nf_rv_csr_write(pmpaddr3, all);
    nf_rv_csr_write(pmpcfg0, cfg);
}

static int nf_rv_main(void) {
#ifdef NF_RV_COUNT
    uint32_t before, after; int rc;
    nf_rv_csr_read(minstret, before);
    rc = main();
    nf_rv_csr_read(minstret, after);
    printf("rv: main executed %lu instructions\n", (unsigned long)(after - before));
    return rc;
#else
    return main();
#endif
}

void nf_rv_reset(void) {
    uint32_t *src, *dst;
    for (src = __data_load, dst = __data_start; dst < __data_end;) *dst++ = *src++;
    for (src = __tdata_load, dst = __tdata_start; dst < __tdata_end;) *dst++ = *src++;
    for (dst = __zero_start; dst < __zero_end;) *dst++ = 0;   /* .tbss, then .bss */
    __asm__ volatile("mv tp, %0" : : "r"(__tdata_start));    /* TLS block: .tdata then .tbss */
    nf_rv_pmp_lock();
    exit(nf_rv_main());
}

/* The first instruction at the start of DRAM. gp is set with relaxation off (else the
   assembler would relax "la gp" against gp itself); the linker then reaches small data
   within 2 KiB of __global_pointer$ in one instruction. */
__attribute__((naked, section(".text.nf_start"))) void _start(void) {
    __asm__ volatile(".option push\n\t.option norelax\n\t"
                     "la gp, __global_pointer$\n\t"
                     ".option pop\n\t"
                     "la sp, __stack_top\n\t"
                     "la t0, nf_rv_trap_entry\n\t"
                     ".option push\n\t.option arch, +zicsr\n\t"
                     "csrw mtvec, t0\n\t"         /* first, so that even a trap here is reported */
#ifdef __riscv_flen
                     "li t0, 0x2000\n\t"          /* mstatus.FS = Initial */
                     "csrs mstatus, t0\n\t"
                     "csrw fcsr, zero\n\t"        /* round to nearest, no flags */
#endif
                     ".option pop\n\t"
                     "j nf_rv_reset");
}
