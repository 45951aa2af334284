/* insncount: a QEMU TCG plugin that counts every guest instruction executed, exactly and
   repeatably (the same count on every run of the same image). Used by bench/mcu_count.sh
   and bench/mcu_size.sh for instructions per log_prob row, per sample and per training
   step on the emulated Cortex-M4F, Cortex-M0 and RISC-V boards. Instructions, not cycles:
   QEMU models no pipeline, wait states or FPU latency.

   Build (host compiler only; the plugin API is declared below, so no QEMU headers needed):
       cc -std=c99 -shared -fPIC -O2 -o libinsncount.so tests/mcu/insncount.c
   Use:
       qemu-system-arm ... -plugin ./libinsncount.so,out=count.txt -kernel fw.elf
   count.txt then holds "insns N". Without out=, the line goes to stderr.

   How: when QEMU translates a block of guest code it calls us once; we attach to each
   instruction of the block an inline "add 1 to this counter" that QEMU emits into the
   translated code itself, ahead of the instruction. The count is therefore exact even
   when a block is left early (an exception, a fault, semihosting's exit), and costs no
   call per instruction.

   The declarations are the few parts of QEMU's plugin API (qemu-plugin.h, API version 1,
   QEMU 5.2 to 8.1; Debian 12 ships QEMU 7.2 with plugins enabled but without the header)
   this file uses, written from QEMU's "TCG Plugins" documentation. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#if defined(__GNUC__) || defined(__clang__)
#define NF_PLUGIN_EXPORT __attribute__((visibility("default")))
#else
#define NF_PLUGIN_EXPORT
#endif

/* ---- the QEMU plugin API (as documented) ----------------------------------------- */
typedef uint64_t qemu_plugin_id_t;
struct qemu_plugin_tb;     /* opaque: a translated block, valid during the callback */
struct qemu_plugin_insn;   /* opaque: one instruction of it */
typedef struct qemu_info_t qemu_info_t;   /* only passed through here */
enum qemu_plugin_op { QEMU_PLUGIN_INLINE_ADD_U64 = 0 };
typedef void (*qemu_plugin_vcpu_tb_trans_cb_t)(qemu_plugin_id_t id, struct qemu_plugin_tb *tb);
typedef void (*qemu_plugin_udata_cb_t)(qemu_plugin_id_t id, void *userdata);

void qemu_plugin_register_vcpu_tb_trans_cb(qemu_plugin_id_t id, qemu_plugin_vcpu_tb_trans_cb_t cb);
void qemu_plugin_register_atexit_cb(qemu_plugin_id_t id, qemu_plugin_udata_cb_t cb, void *userdata);
size_t qemu_plugin_tb_n_insns(const struct qemu_plugin_tb *tb);
struct qemu_plugin_insn *qemu_plugin_tb_get_insn(const struct qemu_plugin_tb *tb, size_t idx);
void qemu_plugin_register_vcpu_insn_exec_inline(struct qemu_plugin_insn *insn, enum qemu_plugin_op op,
                                                void *ptr, uint64_t imm);

/* QEMU refuses a plugin without this symbol, or with a version outside its range */
NF_PLUGIN_EXPORT extern int qemu_plugin_version;
NF_PLUGIN_EXPORT int qemu_plugin_install(qemu_plugin_id_t id, const qemu_info_t *info, int argc, char **argv);

/* ---- the plugin ------------------------------------------------------------------ */
int qemu_plugin_version = 1;

static uint64_t nf_insns;          /* the boards here have one vCPU */
static char nf_out_path[1024];     /* out=FILE, or empty for stderr */

static void nf_on_translate(qemu_plugin_id_t id, struct qemu_plugin_tb *tb) {
    size_t i, n = qemu_plugin_tb_n_insns(tb);
    (void)id;
    for (i = 0; i < n; ++i)
        qemu_plugin_register_vcpu_insn_exec_inline(qemu_plugin_tb_get_insn(tb, i), QEMU_PLUGIN_INLINE_ADD_U64, &nf_insns, 1);
}

static void nf_on_exit(qemu_plugin_id_t id, void *userdata) {
    char line[64];
    (void)id; (void)userdata;
    snprintf(line, sizeof line, "insns %llu\n", (unsigned long long)nf_insns);
    if (nf_out_path[0]) {
        FILE *f = fopen(nf_out_path, "w");
        if (f && fputs(line, f) >= 0 && fclose(f) == 0) return;
        fputs("insncount: cannot write the out= file\n", stderr);
    }
    fputs(line, stderr);
}

int qemu_plugin_install(qemu_plugin_id_t id, const qemu_info_t *info, int argc, char **argv) {
    int i;
    (void)info;
    for (i = 0; i < argc; ++i) {
        if (!strncmp(argv[i], "out=", 4) && strlen(argv[i] + 4) < sizeof nf_out_path) {
            strcpy(nf_out_path, argv[i] + 4);
        } else {
            fputs("insncount: unknown argument (want out=FILE)\n", stderr);
            return -1;
        }
    }
    qemu_plugin_register_vcpu_tb_trans_cb(id, nf_on_translate);
    qemu_plugin_register_atexit_cb(id, nf_on_exit, NULL);
    return 0;
}
