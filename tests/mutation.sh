#!/usr/bin/env bash
# Mutation check of the training tape's log-determinants: each mutant flips the sign of one
# layer kind's (or the base's, or the domains') log|det| on one tape path; the test suite
# must notice every one. Not part of `make test` (it builds the suite once per mutant,
# ~1 min each); run it after changing a kind's tape code: bash tests/mutation.sh
# Prints one line per mutant, "killed" or "SURVIVED", and exits nonzero if any survived.
set -u
cd "$(dirname "$0")/.."
B=build/mutation
mkdir -p "$B"
python3 - "$B" <<'EOF'
import os, subprocess, sys
B = sys.argv[1]
src = open('nflow.h').read()
# (name, text in nflow.h, replacement): each flips one log|det| sign
mutants = [
    ("affine_tape",          "lds = nf_t_sum_rows(tp, s);\n            out = nf_t_add(",
                             "lds = nf_t_scale(tp, nf_t_sum_rows(tp, s), -1);\n            out = nf_t_add("),
    ("affine_tape_inv",      "lds = nf_t_scale(tp, nf_t_sum_rows(tp, s), -1);\n            out = nf_t_mul(",
                             "lds = nf_t_sum_rows(tp, s);\n            out = nf_t_mul("),
    ("spline_tape",          "nf__add_ld(c, nf_t_gather_cols(tp, out, c->f->iota + n, 1), 1);",
                             "nf__add_ld(c, nf_t_scale(tp, nf_t_gather_cols(tp, out, c->f->iota + n, 1), -1), 1);"),
    ("actnorm_tape",         "nf__add_ld(c, nf_t_sum(c->tp, s), 0);\n    return nf_t_add(c->tp, nf_t_mul(c->tp, x, nf_t_exp(c->tp, s)), b);",
                             "nf__add_ld(c, nf_t_scale(c->tp, nf_t_sum(c->tp, s), -1), 0);\n    return nf_t_add(c->tp, nf_t_mul(c->tp, x, nf_t_exp(c->tp, s)), b);"),
    ("actnorm_tape_inv",     "nf__add_ld(c, nf_t_scale(c->tp, nf_t_sum(c->tp, s), -1), 0);\n    return nf_t_mul(c->tp, nf_t_sub(c->tp, z, b)",
                             "nf__add_ld(c, nf_t_sum(c->tp, s), 0);\n    return nf_t_mul(c->tp, nf_t_sub(c->tp, z, b)"),
    ("lu_tape",              "nf__add_ld(c, nf_t_sum(c->tp, s), 0);\n    return nf_t_matmul(",
                             "nf__add_ld(c, nf_t_scale(c->tp, nf_t_sum(c->tp, s), -1), 0);\n    return nf_t_matmul("),
    ("lu_tape_inv",          "nf__add_ld(c, nf_t_scale(c->tp, nf_t_sum(c->tp, s), -1), 0);\n    return nf__t_lu_solve(",
                             "nf__add_ld(c, nf_t_sum(c->tp, s), 0);\n    return nf__t_lu_solve("),
    ("monotone_tape",        "nf__add_ld(c, nf_t_sum_rows(c->tp, nf_t_log(c->tp, slope)), 1);\n    return z;",
                             "nf__add_ld(c, nf_t_scale(c->tp, nf_t_sum_rows(c->tp, nf_t_log(c->tp, slope)), -1), 1);\n    return z;"),
    ("monotone_tape_inv",    "nf__add_ld(c, nf_t_scale(c->tp, nf_t_sum_rows(c->tp, nf_t_log(c->tp, slope)), -1), 1);\n    return y;",
                             "nf__add_ld(c, nf_t_sum_rows(c->tp, nf_t_log(c->tp, slope)), 1);\n    return y;"),
    ("base_nll",             "nf__add_ld(&c, nf_t_scale(tp, nf_t_sum(tp, ls), -1), 0);",
                             "nf__add_ld(&c, nf_t_sum(tp, ls), 0);"),
    ("base_reverse_kl",      "nf__add_ld(&c, nf_t_sum(tp, pl), 0);",
                             "nf__add_ld(&c, nf_t_scale(tp, nf_t_sum(tp, pl), -1), 0);"),
    ("domains_reverse_kl",   "if (ld) nf__add_ld(&c, ld, 1);",
                             "if (ld) nf__add_ld(&c, nf_t_scale(tp, ld, -1), 1);"),
]
tests = [("tests/test_trust.c", "-DNFLOW_DOUBLE", []), ("tests/test_nflow.c", "-DNFLOW_DOUBLE", ["--quick"]),
         ("tests/test_science.c", "", [])]
survived = 0
for name, old, new in mutants:
    n = src.count(old)
    if n != 1:
        print(f"FAIL mutant {name}: its text occurs {n} times in nflow.h (update tests/mutation.sh)"); survived += 1; continue
    d = os.path.join(B, name); os.makedirs(os.path.join(d, 'tests'), exist_ok=True)
    open(os.path.join(d, 'nflow.h'), 'w').write(src.replace(old, new))
    failures = []
    for t, flags, args in tests:
        tsrc = open(t).read()
        dst = os.path.join(d, t)
        open(dst, 'w').write(tsrc)
        exe = dst[:-2]
        cmd = ["gcc", "-std=c99", "-O2"] + ([flags] if flags else []) + [dst, "-o", exe, "-lm"]
        if subprocess.run(cmd, capture_output=True).returncode != 0:
            failures.append(t + " (build)"); continue
        out = subprocess.run([exe] + args, capture_output=True, text=True, cwd='.').stdout
        bad = [l.split()[1] for l in out.splitlines() if l.startswith("FAIL ")]
        if bad: failures.append(t + ": " + ", ".join(bad[:3]))
    if failures: print(f"killed {name}: {'; '.join(failures)}")
    else: print(f"SURVIVED {name}"); survived += 1
print(f"{len(mutants) - survived} killed, {survived} survived")
sys.exit(1 if survived else 0)
EOF
