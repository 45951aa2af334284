"""The nflow performance protocol (bench/bench_flows.c) in plain PyTorch, for a
side-by-side comparison. One thread, float32. Prints the same JSON keys.

RealNVP, L = 8 affine couplings, alternating checkerboard masks (even features
kept on even layers), conditioner MLP with 2 hidden ReLU layers of width H, output
[shift | raw log-scale], log-scale = tanh(raw), last layer zero-initialised;
standard normal base; Adam, lr 1e-3. A step = forward, mean NLL, backward, Adam.

Usage: /usr/bin/python3 bench/peer_torch.py P1 [--quick]   (one config per process,
so that the peak resident set is that config's)."""
import json, math, resource, statistics, sys, time

import torch

CONFIGS = {"P1": (2, 64, 256), "P2": (2, 256, 512), "P3": (16, 128, 256), "P4": (64, 256, 512)}


def openblas_core():
    """The kernel OpenBLAS picked (openblas_get_corename), if OpenBLAS is loaded."""
    import ctypes
    for lib in ("libopenblas.so.0", "libblas.so.3"):
        try:
            f = ctypes.CDLL(lib).openblas_get_corename
            f.restype = ctypes.c_char_p
            return f().decode()
        except (OSError, AttributeError):
            continue
    return "n/a"


def blas_in_use():
    with open("/proc/self/maps") as f:
        libs = {line.split()[-1] for line in f if ".so" in line}
    for name in ("openblas", "blis", "mkl", "libblas"):
        hits = [l for l in libs if name in l.lower()]
        if hits:
            return sorted(hits)[0]
    return "unknown"


def make_data(D, n, gen):
    if D == 2:
        t = math.pi * torch.rand(n, generator=gen)
        up = torch.rand(n, generator=gen) < 0.5
        x = torch.where(up, torch.cos(t), 1 - torch.cos(t)) + 0.05 * torch.randn(n, generator=gen)
        y = torch.where(up, torch.sin(t), 0.5 - torch.sin(t)) + 0.05 * torch.randn(n, generator=gen)
        d = torch.stack([x, y], 1)
        return (d - d.mean(0)) / d.std(0, unbiased=False)
    mu = 4 * torch.rand(8, D, generator=gen) - 2
    sd = 0.3 + 0.5 * torch.rand(8, 1, generator=gen)
    k = torch.randint(0, 8, (n,), generator=gen)
    return mu[k] + sd[k] * torch.randn(n, D, generator=gen)


class Coupling(torch.nn.Module):
    def __init__(self, D, H, parity):
        super().__init__()
        keep = [j for j in range(D) if j % 2 == parity] if D > 1 else []
        trans = [j for j in range(D) if j not in keep]
        self.register_buffer("keep", torch.tensor(keep, dtype=torch.long))
        self.register_buffer("trans", torch.tensor(trans, dtype=torch.long))
        self.nt = len(trans)
        self.net = torch.nn.Sequential(
            torch.nn.Linear(len(keep), H), torch.nn.ReLU(),
            torch.nn.Linear(H, H), torch.nn.ReLU(),
            torch.nn.Linear(H, 2 * self.nt))
        torch.nn.init.zeros_(self.net[-1].weight)
        torch.nn.init.zeros_(self.net[-1].bias)

    def forward(self, y):                       # data -> latent
        out = self.net(y[:, self.keep])
        t, s = out[:, :self.nt], torch.tanh(out[:, self.nt:])
        z = y.clone()
        z[:, self.trans] = y[:, self.trans] * torch.exp(s) + t
        return z, s.sum(1)

    def inverse(self, z):                       # latent -> data
        out = self.net(z[:, self.keep])
        t, s = out[:, :self.nt], torch.tanh(out[:, self.nt:])
        y = z.clone()
        y[:, self.trans] = (z[:, self.trans] - t) * torch.exp(-s)
        return y, -s.sum(1)


class Flow(torch.nn.Module):
    def __init__(self, D, H, L=8):
        super().__init__()
        self.D = D
        self.layers = torch.nn.ModuleList([Coupling(D, H, i % 2) for i in range(L)])

    def log_prob(self, y):
        ld = torch.zeros(y.shape[0])
        for layer in self.layers:
            y, l = layer(y)
            ld = ld + l
        return -0.5 * (y * y).sum(1) - 0.5 * self.D * math.log(2 * math.pi) + ld

    def sample(self, n):
        z = torch.randn(n, self.D)
        logp = -0.5 * (z * z).sum(1) - 0.5 * self.D * math.log(2 * math.pi)
        for layer in reversed(self.layers):
            z, l = layer.inverse(z)
            logp = logp - l
        return z, logp


def main():
    torch.set_num_threads(1)
    name = sys.argv[1]
    quick = "--quick" in sys.argv
    D, H, batch = CONFIGS[name]
    gen = torch.Generator().manual_seed(1234)
    data = make_data(D, 20000, gen)
    torch.manual_seed(0)
    flow = Flow(D, H)
    opt = torch.optim.Adam(flow.parameters(), lr=1e-3)
    macs = sum(l.net[0].in_features * H + H * H + H * 2 * l.nt for l in flow.layers)

    def step(i):
        lo = (i * batch) % (20000 - batch)
        loss = -flow.log_prob(data[lo:lo + batch]).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss.item()

    steps = max(3, int(2e9 / (6 * macs * batch) / 8) + 3)   # PyTorch is slower: shorter runs
    if quick:
        steps = max(2, steps // 4)
    for i in range(steps):
        step(i)
    runs = []
    for r in range(3 if quick else 5):
        t0 = time.perf_counter()
        for i in range(steps):
            loss = step(i)
        runs.append(steps / (time.perf_counter() - t0))
    sps = statistics.median(runs)
    with torch.no_grad():
        lp, sm = [], []
        for r in range(3 if quick else 5):
            t0 = time.perf_counter(); flow.log_prob(data[:10000]); lp.append((time.perf_counter() - t0) * 1e3)
            t0 = time.perf_counter(); flow.sample(10000); sm.append((time.perf_counter() - t0) * 1e3)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"impl": "torch", "config": name, "steps_per_s": round(sps, 2),
                      "gflops": round(6 * macs * batch * sps * 1e-9, 2),
                      "logprob_10k_ms": round(statistics.median(lp), 3), "sample_10k_ms": round(statistics.median(sm), 3),
                      "train_bytes": rss, "final_loss": round(loss, 4), "torch": torch.__version__,
                      "blas": blas_in_use(), "openblas_core": openblas_core(), "threads": torch.get_num_threads()}))


if __name__ == "__main__":
    main()
