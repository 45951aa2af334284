"""make bench-compare: nflow (bench/bench_flows) and PyTorch (bench/peer_torch.py) side
by side on the protocol's P1-P4, with the ratios against the performance goals.

The machine drifts (shared VMs vary by tens of percent within minutes), so the two
implementations run interleaved, config by config, for ROUNDS rounds; each printed
figure is the median over rounds, and each ratio the median of the per-round ratios."""
import json, os, statistics, subprocess, sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
TORCH_PY = "/usr/bin/python3"   # Debian's python3-torch lives in the system Python
GOALS = {"P1": 5.0, "P2": 1.2, "P3": 2.0, "P4": 1.2}
CONFIGS = ("P1", "P2", "P3", "P4")
quick = "--quick" in sys.argv
ROUNDS = 1 if quick else 3

# PyTorch at its best: some machines pin OPENBLAS_CORETYPE (and OPENBLAS_L2_SIZE) to an
# older kernel; the peer runs without them, single-threaded, and reports the kernel used.
peer_env = {k: v for k, v in os.environ.items() if k not in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")}
peer_env["OMP_NUM_THREADS"] = "1"


def run_json(cmd, env=None):
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env).stdout
    return [json.loads(l) for l in out.splitlines() if l.startswith("{")]


rows = {c: [] for c in CONFIGS}
for r in range(ROUNDS):
    for cfg in CONFIGS:
        ours = run_json([os.path.join(ROOT, "build", "bench_flows"), cfg] + (["--quick"] if quick else []))[0]
        try:
            theirs = run_json([TORCH_PY, os.path.join(HERE, "peer_torch.py"), cfg] + (["--quick"] if quick else []), peer_env)[0]
        except Exception as e:   # PyTorch is optional
            print(f"PyTorch run for {cfg} failed: {e}", file=sys.stderr)
            theirs = None
        rows[cfg].append((ours, theirs))
        print(json.dumps(ours)); print(json.dumps(theirs)) if theirs else None
        sys.stdout.flush()

med = statistics.median
first = next((t for c in CONFIGS for _, t in rows[c] if t), None)
if first:
    print(f"\nPyTorch {first['torch']}, {first['threads']} thread, BLAS: {first['blas']} (OpenBLAS kernel {first['openblas_core']})")
print(f"medians over {ROUNDS} interleaved round(s)")
print(f"{'cfg':4} {'steps/s nflow':>14} {'torch':>8} {'ratio':>7} {'goal':>5}      {'logprob10k ms':>14} {'torch':>8} {'ratio':>6}"
      f"   {'sample10k ms':>13} {'torch':>8} {'ratio':>6}   {'train MB':>9} {'torch RSS MB':>12}")
for cfg in CONFIGS:
    pairs = [(a, b) for a, b in rows[cfg] if b]
    if not pairs:
        continue
    A = lambda k: med([a[k] for a, _ in pairs])
    B = lambda k: med([b[k] for _, b in pairs])
    rs = med([a["steps_per_s"] / b["steps_per_s"] for a, b in pairs])
    rl = med([b["logprob_10k_ms"] / a["logprob_10k_ms"] for a, b in pairs])
    rm = med([b["sample_10k_ms"] / a["sample_10k_ms"] for a, b in pairs])
    print(f"{cfg:4} {A('steps_per_s'):14.1f} {B('steps_per_s'):8.1f} {rs:6.2f}x {GOALS[cfg]:4.1f}x {'ok' if rs >= GOALS[cfg] else 'MISS':>4}"
          f"   {A('logprob_10k_ms'):10.2f} {B('logprob_10k_ms'):8.2f} {rl:5.1f}x"
          f"   {A('sample_10k_ms'):13.2f} {B('sample_10k_ms'):8.2f} {rm:5.1f}x"
          f"   {A('train_bytes') / 1e6:9.1f} {B('train_bytes') / 1e6:12.1f}")
