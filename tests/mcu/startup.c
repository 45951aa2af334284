/* Cortex-M startup for nflow's emulated-microcontroller tests (QEMU + semihosting).
   The core reads its initial stack pointer and reset address from the vector table
   at address 0. Reset: enable the FPU when there is one (else the first float
   instruction faults), copy .data from flash, zero .bss, open semihosting stdio,
   run constructors, exit(main()). newlib's exit reaches QEMU through semihosting
   SYS_EXIT_EXTENDED, so QEMU's exit status is main's. A fault prints where and exits 99. */
#include <stdint.h>
#include <stdlib.h>

int main(void);
void initialise_monitor_handles(void);   /* newlib's librdimon */
void __libc_init_array(void);
extern uint32_t __etext, __data_start__, __data_end__, __bss_start__, __bss_end__, __StackTop;

void _init(void) {}   /* -nostartfiles drops crti/crtn */
void _fini(void) {}

static int semihost_call(int op, void *arg) {
    register int r0 __asm__("r0") = op;
    register void *r1 __asm__("r1") = arg;
    __asm__ volatile("bkpt 0xab" : "+r"(r0) : "r"(r1) : "memory");
    return r0;
}
static void say(const char *s) { semihost_call(0x04, (void *)s); }   /* SYS_WRITE0 */
static void say_hex(uint32_t v) {
    char b[12]; int i;
    b[0] = '0'; b[1] = 'x';
    for (i = 0; i < 8; ++i) b[2 + i] = "0123456789abcdef"[(v >> (28 - 4 * i)) & 15];
    b[10] = ' '; b[11] = 0;
    say(b);
}

/* frame: r0-r3, r12, lr, pc, xpsr as stacked by the core */
void __attribute__((used, noreturn)) nf_mcu_fault(uint32_t *frame) {
    uint32_t block[2] = {0x20026u, 99u};   /* ADP_Stopped_ApplicationExit, status 99 */
    say("\n*** MCU FAULT pc="); say_hex(frame[6]); say("lr="); say_hex(frame[5]); say("\n");
    semihost_call(0x20, block);            /* SYS_EXIT_EXTENDED */
    for (;;) {}
}
void __attribute__((naked)) Fault_Handler(void) {
    __asm__ volatile("mov r0, sp\n\t"
                     "ldr r1, =nf_mcu_fault\n\t"
                     "bx r1\n\t");
}

void __attribute__((noreturn)) Reset_Handler(void) {
    uint32_t *src = &__etext, *dst;
#if defined(__ARM_FP)
    *(volatile uint32_t *)0xE000ED88u |= 0xFu << 20;   /* CPACR: full access to CP10, CP11 */
    __asm__ volatile("dsb\n\tisb");
#endif
    for (dst = &__data_start__; dst < &__data_end__;) *dst++ = *src++;
    for (dst = &__bss_start__; dst < &__bss_end__;) *dst++ = 0;
    initialise_monitor_handles();
    __libc_init_array();
    exit(main());
}

typedef void (*vector)(void);
__attribute__((section(".isr_vector"), used)) const vector nf_vectors[16] = {
    (vector)(uintptr_t)&__StackTop, Reset_Handler,
    Fault_Handler, Fault_Handler, Fault_Handler, Fault_Handler, Fault_Handler,   /* NMI .. UsageFault */
    0, 0, 0, 0, Fault_Handler, Fault_Handler, 0, Fault_Handler, Fault_Handler    /* SVC .. SysTick */
};
