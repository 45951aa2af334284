"""bench/scaling.c's measurement in PyTorch: the median time of one training step of
bench/peer_torch.py's RealNVP (the same model as bench_flows: L affine couplings,
checkerboard masks, 2 hidden ReLU layers of width H, log-scale = tanh(raw), Adam lr 1e-3),
at batch B, width H, dimension D, depth L. One thread, float32. Data: a fixed-seed
8-component Gaussian mixture (16384 rows, minibatches in turn). 3 warm-up steps (at least
0.05 s), then steps timed one by one until at least 7 and `budget` seconds; the median.

Usage: /usr/bin/python3 bench/scaling_peer.py --serve   reads "B H D L budget" lines from
       stdin, answers each with a JSON line (bench/compare.py --scaling drives it)
       /usr/bin/python3 bench/scaling_peer.py B H D L [budget]   one point"""
import json, os, statistics, sys, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch
from peer_torch import Flow, openblas_single_thread

NDATA, MAXSTEPS = 16384, 400


def make_data(D):
    gen = torch.Generator().manual_seed(1234)
    mu = 4 * torch.rand(8, D, generator=gen) - 2
    sd = 0.3 + 0.5 * torch.rand(8, 1, generator=gen)
    k = torch.randint(0, 8, (NDATA,), generator=gen)
    return mu[k] + sd[k] * torch.randn(NDATA, D, generator=gen)


def point_ms(B, H, D, L, budget):
    data = make_data(D)
    torch.manual_seed(0)
    flow = Flow(D, H, L)
    opt = torch.optim.Adam(flow.parameters(), lr=1e-3)

    def step(i):
        lo = (i * B) % (NDATA - B)
        loss = -flow.log_prob(data[lo:lo + B]).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss.item()

    t0, i = time.perf_counter(), 0
    while i < 3 or time.perf_counter() - t0 < 0.05:   # warm-up
        step(i)
        i += 1
    times, t0 = [], time.perf_counter()
    while len(times) < MAXSTEPS and (len(times) < 7 or time.perf_counter() - t0 < budget):
        s = time.perf_counter()
        step(i + len(times))
        times.append((time.perf_counter() - s) * 1e3)
    return statistics.median(times), len(times)


def point_json(B, H, D, L, budget):
    ms, n = point_ms(B, H, D, L, budget)
    print(json.dumps({"impl": "torch", "batch": B, "width": H, "dim": D, "depth": L, "ms": round(ms, 4), "steps": n}), flush=True)


def main():
    torch.set_num_threads(1)
    openblas_single_thread()
    if sys.argv[1:2] == ["--serve"]:
        for line in sys.stdin:
            f = line.split()
            if len(f) == 5:
                point_json(int(f[0]), int(f[1]), int(f[2]), int(f[3]), float(f[4]))
        return
    B, H, D, L = (int(v) for v in sys.argv[1:5])
    point_json(B, H, D, L, float(sys.argv[5]) if len(sys.argv) > 5 else 0.5)


if __name__ == "__main__":
    main()
