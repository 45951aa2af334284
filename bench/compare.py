"""make bench-compare: nflow (bench/bench_flows) and PyTorch (bench/peer_torch.py) side
by side on the protocol's P1-P4 (RealNVP), with the ratios against the performance
goals, and the same sizes with spline couplings (NSF) and autoregressive layers (MAF).
make bench-scaling (--scaling): bench/scaling and bench/scaling_peer.py over the batch,
width, dimension and depth sweeps; a Markdown table and docs/scaling.png.

The machine drifts (shared VMs vary by tens of percent within minutes), so the two
implementations run interleaved, config by config (sweep point by sweep point), for
several rounds; each printed figure is the median over rounds, and each ratio the
median of the per-round ratios.

PyTorch runs at its best BLAS kernel: an OpenBLAS older than the CPU does not know it and
falls back to a generic kernel (Debian 12's 0.3.21 picks "Prescott", SSE3, on Zen 4/5,
Cooper Lake and Sapphire Rapids). The CPU's flags choose OPENBLAS_CORETYPE (SkylakeX with
AVX-512F, Haswell with AVX2 and FMA); one SGEMM is timed and checked against float64 with
the default kernel and with the chosen one. The chosen one is forced when the default
uses an older instruction set (a fallback), unless OpenBLAS ignores it, its results are
wrong, or the default was measured faster; a default of the same instruction set is
OpenBLAS's own pick for a CPU it knows (Zen rather than Haswell) and stays.

Usage: /usr/bin/python3 bench/compare.py [--quick] [--rounds N] [CONFIG ...]   P1 .. P4-MAF
       /usr/bin/python3 bench/compare.py --scaling [--quick] [--rounds N]
       /usr/bin/python3 bench/compare.py --blas [--rounds N]   the kernel choice alone
  --pretend-default CORE  makes CORE (e.g. Prescott) play OpenBLAS's default, to see the
                          fallback being caught on a CPU that OpenBLAS knows"""
import datetime, hashlib, json, os, platform, statistics, subprocess, sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
BUILD = os.path.join(ROOT, "build")
TORCH_PY = "/usr/bin/python3"   # Debian's python3-torch lives in the system Python
GOALS = {"P1": 5.0, "P2": 1.2, "P3": 2.0, "P4": 1.2}
CONFIGS = ("P1", "P2", "P3", "P4", "P2-NSF", "P3-NSF", "P4-NSF", "P3-MAF", "P4-MAF")
CFLAGS = "-std=c99 -O3 -march=native"   # the Makefile's rules for build/bench_flows and build/scaling
med = statistics.median


def arg_value(flag, default):
    return sys.argv[sys.argv.index(flag) + 1] if flag in sys.argv[:-1] else default


quick = "--quick" in sys.argv
ROUNDS = int(arg_value("--rounds", 1 if quick else 3))


def run_json(cmd, env=None):
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env).stdout
    return [json.loads(l) for l in out.splitlines() if l.startswith("{")]


# ---- the machine, for the stamp -------------------------------------------------------

def cpu_info():
    info = {}
    try:
        for line in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines():
            k, _, v = line.partition(":")
            info[k.strip()] = v.strip()
    except OSError:
        pass
    return info


def cpu_flags():
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    return set()


START = (datetime.datetime.now(), os.getloadavg())


def stamp(torch_info, rounds, what):
    """the lines every table carries: CPU, compiler and flags, nflow.h, date, load, PyTorch"""
    c = cpu_info()
    try:
        cc = subprocess.run(["cc", "--version"], capture_output=True, text=True).stdout.splitlines()[0]
    except (OSError, IndexError):
        cc = "cc"
    with open(os.path.join(ROOT, "nflow.h"), "rb") as f:
        h = hashlib.sha256(f.read()).hexdigest()[:12]
    t0, l0 = START
    minutes = (datetime.datetime.now() - t0).total_seconds() / 60
    lines = [f"CPU: {c.get('Model name', platform.processor())} (family {c.get('CPU family', '?')}, model {c.get('Model', '?')}), "
             f"{os.cpu_count()} CPUs; {cc} {CFLAGS}; nflow.h sha256 {h}",
             f"{t0.strftime('%Y-%m-%d %H:%M')}, load average {'%.2f %.2f %.2f' % l0} (1/5/15 min) at the start, "
             f"{os.getloadavg()[0]:.2f} at the end; {what} over {rounds} interleaved round(s), {minutes:.1f} min"]
    if torch_info:
        lines.append(torch_info)
    return lines


# ---- PyTorch's BLAS kernel ------------------------------------------------------------

def peer_env_base():
    # some machines pin OPENBLAS_CORETYPE or OPENBLAS_L2_SIZE; the peer starts without
    # them, and single-threaded in both OpenMP and OpenBLAS's own pool (pthread build)
    env = {k: v for k, v in os.environ.items() if k not in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")}
    if "--pretend-default" in sys.argv:   # test the fallback path: this kernel plays the default
        env["OPENBLAS_CORETYPE"] = arg_value("--pretend-default", "Prescott")
    env["OMP_NUM_THREADS"] = "1"
    env["OPENBLAS_NUM_THREADS"] = "1"
    return env


# what OpenBLAS's kernels use, by name: AVX-512, AVX2 + FMA, AVX; anything else is older
TIERS = {"skylakex": 3, "cooperlake": 3, "sapphirerapids": 3, "haswell": 2, "zen": 2, "excavator": 2,
         "sandybridge": 1, "bulldozer": 1, "piledriver": 1, "steamroller": 1}


def choose_kernel(rounds):
    """(env for the PyTorch runs, one line describing the kernel choice). The flags' choice
    is forced when the default kernel is of a lower tier (a fallback, or an AVX2 kernel on an
    AVX-512 CPU); a default of the same tier is OpenBLAS's own pick for a CPU it knows (Zen
    for Haswell, Cooperlake for SkylakeX) and stays. Both are measured either way."""
    base = peer_env_base()
    flags = cpu_flags()
    want = "SkylakeX" if "avx512f" in flags else "Haswell" if {"avx2", "fma"} <= flags else None
    forced = dict(base, OPENBLAS_CORETYPE=want) if want else None
    probe = lambda env: run_json([TORCH_PY, os.path.join(HERE, "peer_torch.py"), "--blas-check"], env)[0]
    dflt, frc = [], []
    for _ in range(rounds):   # interleaved
        dflt.append(probe(base))
        if forced:
            frc.append(probe(forced))
    d_core, d_gf, d_err = dflt[0]["openblas_core"], med([p["gflops"] for p in dflt]), max(p["max_rel_err"] for p in dflt)
    if d_core == "n/a":
        return base, f"BLAS {dflt[0]['blas']} (not OpenBLAS): 512x256x256 SGEMM {d_gf:.1f} GFLOP/s, max rel err vs float64 {d_err:.1e}"
    d_tier = TIERS.get(d_core.lower(), 0)
    msg = (f"OpenBLAS kernels, 512x256x256 SGEMM (median of {rounds}), max rel err vs float64: default {d_core} "
           f"{d_gf:.1f} GFLOP/s, {d_err:.1e}")
    if not want:
        return base, msg + "; no AVX2+FMA: OPENBLAS_CORETYPE left unset"
    f_core, f_gf, f_err = frc[0]["openblas_core"], med([p["gflops"] for p in frc]), max(p["max_rel_err"] for p in frc)
    msg += f"; OPENBLAS_CORETYPE={want} ({'avx512f' if want == 'SkylakeX' else 'avx2+fma'}) {f_core} {f_gf:.1f} GFLOP/s, {f_err:.1e}"
    if f_core.lower() != want.lower():
        why = "OpenBLAS ignored OPENBLAS_CORETYPE"
    elif not f_err < 1e-4:
        why = "the forced kernel's results are wrong"
    elif d_tier >= TIERS[want.lower()]:
        why = f"OpenBLAS knows this CPU ({d_core}, same instruction set as {want})"
    elif f_gf < 0.8 * d_gf:
        why = "the default measured faster"
    else:
        fallback = " (the default is a fallback: this OpenBLAS does not know the CPU)" if d_tier < 2 else ""
        return forced, msg + f" -> PyTorch runs with {f_core}{fallback}"
    return base, msg + f" -> {why}: PyTorch runs with the default {d_core}"


# ---- bench-compare --------------------------------------------------------------------

def fmt(v, spec, none="-"):
    return none if v is None else format(v, spec)


def compare(configs):
    env, kernel = choose_kernel(1 if quick else 3)
    rows = {c: [] for c in configs}
    for r in range(ROUNDS):
        for cfg in configs:
            ours = run_json([os.path.join(BUILD, "bench_flows"), cfg] + (["--quick"] if quick else []))[0]
            try:
                theirs = run_json([TORCH_PY, os.path.join(HERE, "peer_torch.py"), cfg] + (["--quick"] if quick else []), env)[0]
            except Exception as e:   # PyTorch is optional
                print(f"PyTorch run for {cfg} failed: {e}", file=sys.stderr)
                theirs = None
            rows[cfg].append((ours, theirs))
            print(json.dumps(ours)); print(json.dumps(theirs)) if theirs else None
            sys.stdout.flush()
    peers = [t for c in configs for _, t in rows[c] if t]
    info = None
    if peers:
        p = peers[0]
        cores = sorted({t["openblas_core"] for t in peers})
        info = (f"PyTorch {p['torch']}, {p['threads']} thread (OpenBLAS threads {p.get('blas_threads', '?')}), BLAS {p['blas']}, "
                f"kernel {', '.join(cores)}")
    lines = stamp(info, ROUNDS, "medians") + [kernel]
    print()
    print("\n".join(lines))
    print(f"{'cfg':6} {'steps/s nflow':>14} {'torch':>8} {'ratio':>7} {'goal':>5}      {'logprob10k ms':>14} {'torch':>8} {'ratio':>6}"
          f"   {'sample10k ms':>13} {'torch':>8} {'ratio':>6}   {'train MB':>9} {'torch RSS MB':>12}")
    md = ["| config | layers | D | H | batch | nflow steps/s | PyTorch steps/s | ratio (median) | goal | log_prob 10k: nflow / PyTorch ms | "
          "sample 10k: nflow / PyTorch ms | training memory nflow / PyTorch RSS |", "|" + "---|" * 12]
    for cfg in configs:
        pairs = [(a, b) for a, b in rows[cfg] if b]
        if not pairs:
            continue
        A = lambda k: med([a[k] for a, _ in pairs]) if pairs[0][0][k] is not None else None
        B = lambda k: med([b[k] for _, b in pairs]) if pairs[0][1][k] is not None else None
        rs = med([a["steps_per_s"] / b["steps_per_s"] for a, b in pairs])
        rl = med([b["logprob_10k_ms"] / a["logprob_10k_ms"] for a, b in pairs])
        rm = med([b["sample_10k_ms"] / a["sample_10k_ms"] for a, b in pairs]) if A("sample_10k_ms") and B("sample_10k_ms") else None
        goal = GOALS.get(cfg)
        verdict = "" if goal is None else ("ok" if rs >= goal else "MISS")
        print(f"{cfg:6} {A('steps_per_s'):14.1f} {B('steps_per_s'):8.1f} {rs:6.2f}x {fmt(goal, '4.1f'):>4}{'x' if goal else ' '} {verdict:>4}"
              f"   {A('logprob_10k_ms'):10.2f} {B('logprob_10k_ms'):8.2f} {rl:5.1f}x"
              f"   {fmt(A('sample_10k_ms'), '13.2f'):>13} {fmt(B('sample_10k_ms'), '8.2f'):>8} {fmt(rm, '5.1f'):>5}{'x' if rm else ' '}"
              f"   {A('train_bytes') / 1e6:9.1f} {B('train_bytes') / 1e6:12.1f}")
        D, H, batch = {"P1": (2, 64, 256), "P2": (2, 256, 512), "P3": (16, 128, 256), "P4": (64, 256, 512)}[cfg[:2]]
        kind = cfg[3:] or "RealNVP"
        md.append(f"| {cfg} | {kind} | {D} | {H} | {batch} | {A('steps_per_s'):,.1f} | {B('steps_per_s'):,.1f} | {rs:.2f}x | "
                  f"{fmt(goal, '.1f')}{'x' if goal else ''} | {A('logprob_10k_ms'):.1f} / {B('logprob_10k_ms'):.1f} ({rl:.1f}x) | "
                  + (f"{A('sample_10k_ms'):.1f} / {B('sample_10k_ms'):.1f} ({rm:.1f}x)" if rm else "not timed (D passes)")
                  + f" | {A('train_bytes') / 1e6:.1f} MB / {B('train_bytes') / 1e6:.0f} MB |")
    md_text = "\n".join([l + "  " for l in lines[:-1]] + [lines[-1], ""] + md) + "\n"
    with open(os.path.join(BUILD, "compare.md"), "w") as f:
        f.write(md_text)
    print("\n(Markdown in build/compare.md)")


# ---- bench-scaling --------------------------------------------------------------------

def sweeps():
    full = {"batch": (64, 128, 256, 512, 1024, 2048, 4096), "width": (32, 64, 128, 256, 512),
            "dim": (2, 4, 8, 16, 32, 64, 128), "depth": (2, 4, 8, 16, 32)}
    brief = {"batch": (64, 512, 4096), "width": (32, 128, 512), "dim": (2, 16, 128), "depth": (2, 8, 32)}
    out = []
    for name, values in (brief if quick else full).items():
        for v in values:
            B, H, D, L = (v if name == "batch" else 256, v if name == "width" else 128, v if name == "dim" else 16, v if name == "depth" else 8)
            out.append((name, v, (B, H, D, L)))
    return out


class Server:
    """a measuring process that answers "B H D L budget" lines with JSON lines"""
    def __init__(self, cmd, env=None):
        self.p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)

    def ask(self, point, budget):
        self.p.stdin.write("%d %d %d %d %g\n" % (point + (budget,)))
        self.p.stdin.flush()
        line = self.p.stdout.readline()
        if not line:
            raise RuntimeError("measuring process ended")
        return json.loads(line)

    def close(self):
        self.p.stdin.close()
        self.p.wait()


def scaling():
    env, kernel = choose_kernel(1 if quick else 3)
    budget = 0.1 if quick else 0.4
    pts = sweeps()
    uniq = sorted({p for _, _, p in pts}, key=lambda p: p[0] * p[1] * p[1] * p[2] * p[3])
    ours = Server([os.path.join(BUILD, "scaling"), "--serve"])
    try:
        theirs = Server([TORCH_PY, os.path.join(HERE, "scaling_peer.py"), "--serve"], env)
    except OSError as e:
        print(f"PyTorch not available: {e}", file=sys.stderr)
        theirs = None
    res = {p: [] for p in uniq}
    for r in range(ROUNDS):
        order = uniq if r % 2 == 0 else uniq[::-1]   # alternate the order, and who goes first
        for p in order:
            if r % 2 == 0 or not theirs:
                a = ours.ask(p, budget); b = theirs.ask(p, budget) if theirs else None
            else:
                b = theirs.ask(p, budget); a = ours.ask(p, budget)
            res[p].append((a["ms"], b["ms"] if b else None))
            print(f"round {r + 1}/{ROUNDS}  B={p[0]:5} H={p[1]:4} D={p[2]:4} L={p[3]:3}  nflow {a['ms']:9.3f} ms"
                  + (f"  torch {b['ms']:9.3f} ms  ratio {b['ms'] / a['ms']:5.2f}x" if b else ""), flush=True)
    ours.close()
    if theirs:
        theirs.close()
    info = None
    if theirs:
        probe = run_json([TORCH_PY, os.path.join(HERE, "peer_torch.py"), "--blas-check"], env)[0]
        info = f"PyTorch (scaling_peer.py), 1 thread, BLAS {probe['blas']}, kernel {probe['openblas_core']}"
    lines = stamp(info, ROUNDS, "medians of per-step medians") + [kernel]
    tsv = ["# " + lines[0], "# " + lines[1], "# sweep\tvalue\tnflow_ms\ttorch_ms\tratio\tB\tH\tD\tL"]
    md = ["| sweep | B | H | D | L | nflow ms/step | PyTorch ms/step | ratio PyTorch / nflow (median) |", "|---|---|---|---|---|---|---|---|"]
    print("\n" + "\n".join(lines))
    print(f"{'sweep':6} {'value':>6} {'nflow ms':>10} {'torch ms':>10} {'ratio':>7}")
    for name, v, p in pts:
        a = med([x for x, _ in res[p]])
        bs = [y for _, y in res[p] if y]
        b = med(bs) if bs else None
        ratio = med([y / x for x, y in res[p]]) if bs else None
        print(f"{name:6} {v:6} {a:10.3f} {fmt(b, '10.3f'):>10} {fmt(ratio, '6.2f'):>6}x")
        tsv.append(f"{name}\t{v}\t{a:.4f}\t{fmt(b, '.4f', 'nan')}\t{fmt(ratio, '.3f', 'nan')}\t" + "\t".join(map(str, p)))
        cells = [("**%d**" % x if name == n else str(x)) for x, n in zip(p, ("batch", "width", "dim", "depth"))]
        md.append(f"| {name} | " + " | ".join(cells) + f" | {a:.3f} | {fmt(b, '.3f')} | {fmt(ratio, '.2f')}{'x' if ratio else ''} |")
    with open(os.path.join(BUILD, "scaling.tsv"), "w") as f:
        f.write("\n".join(tsv) + "\n")
    with open(os.path.join(BUILD, "scaling.md"), "w") as f:
        f.write("\n".join([l + "  " for l in lines[:-1]] + [lines[-1], ""] + md) + "\n")
    png = os.path.join(ROOT, "docs", "scaling.png") if not quick else os.path.join(BUILD, "scaling.png")
    subprocess.run([os.path.join(BUILD, "scaling"), "--plot", os.path.join(BUILD, "scaling.tsv"), png], check=True)
    print("(Markdown in build/scaling.md, data in build/scaling.tsv)")


if __name__ == "__main__":
    if "--blas" in sys.argv:
        print(choose_kernel(ROUNDS)[1])
    elif "--scaling" in sys.argv:
        scaling()
    else:
        named = [a for a in sys.argv[1:] if a in CONFIGS]
        compare(named or CONFIGS)
