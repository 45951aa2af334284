"""make bench-compare: runs bench/bench_flows (nflow) and bench/peer_torch.py
(PyTorch, one process per config) and prints both side by side with the ratios
against the goals of the performance issue."""
import json, os, subprocess, sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
TORCH_PY = "/usr/bin/python3"   # Debian's python3-torch lives in the system Python
GOALS = {"P1": 5.0, "P2": 1.2, "P3": 2.0, "P4": 1.2}
quick = "--quick" in sys.argv


def jsonl(cmd):
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return [json.loads(l) for l in out.splitlines() if l.startswith("{")]


ours = {r["config"]: r for r in jsonl([os.path.join(ROOT, "build", "bench_flows")] + (["--quick"] if quick else []))}
theirs = {}
# PyTorch at its best: some machines pin OPENBLAS_CORETYPE (and OPENBLAS_L2_SIZE) to an
# older kernel; the peer runs without them, single-threaded, and reports the kernel used.
peer_env = {k: v for k, v in os.environ.items() if k not in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")}
peer_env["OMP_NUM_THREADS"] = "1"
for cfg in ("P1", "P2", "P3", "P4"):
    try:
        out = subprocess.run([TORCH_PY, os.path.join(HERE, "peer_torch.py"), cfg] + (["--quick"] if quick else []),
                             check=True, capture_output=True, text=True, env=peer_env).stdout
        theirs[cfg] = [json.loads(l) for l in out.splitlines() if l.startswith("{")][0]
    except Exception as e:   # PyTorch is optional
        print(f"PyTorch run for {cfg} failed: {e}", file=sys.stderr)
if theirs:
    t = next(iter(theirs.values()))
    print(f"PyTorch {t['torch']}, {t['threads']} thread, BLAS: {t['blas']} (OpenBLAS kernel {t['openblas_core']})")
print(f"{'cfg':4} {'steps/s nflow':>14} {'torch':>8} {'ratio':>7} {'goal':>5}   {'logprob10k ms':>14} {'torch':>8} {'ratio':>6}"
      f"   {'sample10k ms':>13} {'torch':>8} {'ratio':>6}   {'train MB':>9} {'torch RSS':>10}")
for cfg in ("P1", "P2", "P3", "P4"):
    a, b = ours.get(cfg), theirs.get(cfg)
    if not a:
        continue
    if not b:
        print(f"{cfg:4} {a['steps_per_s']:14.1f}   (no PyTorch result)")
        continue
    r = a["steps_per_s"] / b["steps_per_s"]
    print(f"{cfg:4} {a['steps_per_s']:14.1f} {b['steps_per_s']:8.1f} {r:6.2f}x {GOALS[cfg]:4.1f}x {'ok' if r >= GOALS[cfg] else 'MISS':>4}"
          f" {a['logprob_10k_ms']:10.2f} {b['logprob_10k_ms']:8.2f} {b['logprob_10k_ms'] / a['logprob_10k_ms']:5.1f}x"
          f"   {a['sample_10k_ms']:13.2f} {b['sample_10k_ms']:8.2f} {b['sample_10k_ms'] / a['sample_10k_ms']:5.1f}x"
          f"   {a['train_bytes'] / 1e6:9.1f} {b['train_bytes'] / 1e6:10.1f}")
for cfg in ("P1", "P2", "P3", "P4"):
    for r in (ours.get(cfg), theirs.get(cfg)):
        if r:
            print(json.dumps(r))
