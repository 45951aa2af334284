"""The nflow performance protocol (bench/bench_flows.c) in plain PyTorch, for a
side-by-side comparison. One thread, float32. Prints the same JSON keys.

RealNVP rows (P1-P4): L = 8 affine couplings, alternating checkerboard masks (even
features kept on even layers), conditioner MLP with 2 hidden ReLU layers of width H,
output [shift | raw log-scale], log-scale = tanh(raw), last layer zero-initialised;
standard normal base; Adam, lr 1e-3. A step = forward, mean NLL, backward, Adam.

NSF rows (P1-NSF .. P4-NSF, nf_flow_desc_nsf(&d, D, 8, H, 8) as it was before issue 18
item 15, which added affine couplings and LU layers: not mirrored here yet): the same couplings with
a rational-quadratic spline per transformed feature (Durkan et al. 2019), 8 bins on
[-5, 5] (the tail bound of the nflow presets), identity outside; widths and heights floored softmaxes (1e-3), inner knot
derivatives 1e-3 + softplus(u + c0), outer ones 1, so that zero parameters are the
identity. MAF rows (P1-MAF .. P4-MAF, nf_flow_desc_maf(&d, D, 8, H, NF_TRANSFORM_AFFINE,
0)): 8 MADE layers (Germain et al. 2015) of 2 hidden ReLU layers of width H, natural and
reversed orders alternating, z = y e^s + t with s = 3 tanh(raw / 3). Both mirror
nflow.h's layer sections, parameter layout included (bench/README.md says how that
was checked). MAF sampling takes D sequential passes and is not timed.

Usage: /usr/bin/python3 bench/peer_torch.py P1 [--quick]   (one config per process,
so that the peak resident set is that config's)
       /usr/bin/python3 bench/peer_torch.py --blas-check   (the BLAS kernel in use: one
512x256x256 SGEMM's speed and its error against float64)"""
import ctypes, json, math, resource, statistics, sys, time

import torch
import torch.nn.functional as F

CONFIGS = {"P1": (2, 64, 256), "P2": (2, 256, 512), "P3": (16, 128, 256), "P4": (64, 256, 512)}
KINDS = ("RealNVP", "NSF", "MAF")


def parse_config(name):
    """'P3' -> (16, 128, 256, 'RealNVP'); 'P4-MAF' -> (64, 256, 512, 'MAF')."""
    base, _, kind = name.partition("-")
    kind = {"": "RealNVP", "NSF": "NSF", "MAF": "MAF"}[kind.upper()]
    return CONFIGS[base] + (kind,)


def loaded_libs():
    with open("/proc/self/maps") as f:
        return sorted({line.split()[-1] for line in f if ".so" in line})


def openblas_lib():
    """The OpenBLAS this process loaded (through libblas.so.3), opened again by its path
    so that ctypes reaches the same instance; None if no OpenBLAS is loaded."""
    for path in [l for l in loaded_libs() if "openblas" in l.lower()]:
        try:
            lib = ctypes.CDLL(path)
            lib.openblas_get_corename
            return lib
        except (OSError, AttributeError):
            continue
    return None


def openblas_core():
    """The kernel OpenBLAS picked (openblas_get_corename), or n/a."""
    lib = openblas_lib()
    if lib is None:
        return "n/a"
    f = lib.openblas_get_corename
    f.restype = ctypes.c_char_p
    return f().decode()


def openblas_single_thread():
    """torch.set_num_threads sets OpenMP's count only: the pthread build of OpenBLAS
    (Debian's libopenblas0-pthread) would still run its own 2+ threads. Returns the
    thread count OpenBLAS reports afterwards (0 if no OpenBLAS)."""
    lib = openblas_lib()
    if lib is None:
        return 0
    lib.openblas_set_num_threads(1)
    return lib.openblas_get_num_threads()


def blas_in_use():
    libs = loaded_libs()
    for name in ("openblas", "blis", "mkl", "libblas"):
        hits = [l for l in libs if name in l.lower()]
        if hits:
            return hits[0]
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


def conditioner(n_in, H, n_out):
    """2 hidden ReLU layers of width H, last layer zero (every layer starts as the identity)."""
    net = torch.nn.Sequential(torch.nn.Linear(n_in, H), torch.nn.ReLU(),
                              torch.nn.Linear(H, H), torch.nn.ReLU(), torch.nn.Linear(H, n_out))
    torch.nn.init.zeros_(net[-1].weight)
    torch.nn.init.zeros_(net[-1].bias)
    return net


class Coupling(torch.nn.Module):
    """RealNVP affine coupling, log-scale = tanh(raw)."""
    def __init__(self, D, H, parity):
        super().__init__()
        keep = [j for j in range(D) if j % 2 == parity] if D > 1 else []
        trans = [j for j in range(D) if j not in keep]
        self.register_buffer("keep", torch.tensor(keep, dtype=torch.long))
        self.register_buffer("trans", torch.tensor(trans, dtype=torch.long))
        self.nt = len(trans)
        self.net = conditioner(len(keep), H, 2 * self.nt)

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


def rq_spline(x, u, K, inverse=False, B=5.0, min_w=1e-3, min_h=1e-3, min_d=1e-3):
    """Monotone rational-quadratic spline of K bins on [-B, B], the identity outside.
    x: (N, n); u: (N, n, 3K - 1) = [K width logits | K height logits | K - 1 inner slopes].
    Returns the mapped x (inverse: the preimage) and log|d out / d in| summed per row.
    In bin k (left knot x_k, y_k; width w, height h; slopes d_k, d_k+1), with
    xi = (x - x_k) / w, s = h / w, e = d_k + d_k+1 - 2 s:
        out = y_k + h (s xi^2 + d_k xi (1 - xi)) / (s + e xi (1 - xi))
        slope = s^2 (d_k+1 xi^2 + 2 s xi (1 - xi) + d_k (1 - xi)^2) / (s + e xi (1 - xi))^2
    and the inverse solves the quadratic in xi by its cancellation-free root."""
    inside = (x > -B) & (x < B)
    v = torch.where(inside, x, torch.zeros_like(x))        # keeps the unused branch finite
    w = 2 * B * (min_w + (1 - min_w * K) * torch.softmax(u[..., :K], -1))
    h = 2 * B * (min_h + (1 - min_h * K) * torch.softmax(u[..., K:2 * K], -1))
    one = torch.ones(u.shape[:-1] + (1,), dtype=u.dtype)
    c0 = math.log(math.expm1(1 - min_d))                    # u = 0 gives slope 1
    d = torch.cat([one, min_d + F.softplus(u[..., 2 * K:] + c0), one], -1)
    xr, yr = torch.cumsum(w, -1) - B, torch.cumsum(h, -1) - B   # right knots
    k = (v.unsqueeze(-1) >= (yr if inverse else xr)[..., :-1]).sum(-1, keepdim=True)
    wk, hk = w.gather(-1, k)[..., 0], h.gather(-1, k)[..., 0]
    xk, yk = xr.gather(-1, k)[..., 0] - wk, yr.gather(-1, k)[..., 0] - hk
    dk, dk1 = d.gather(-1, k)[..., 0], d.gather(-1, k + 1)[..., 0]
    s = hk / wk
    e = dk + dk1 - 2 * s
    if inverse:
        dz = v - yk
        a, b, c = hk * (s - dk) + dz * e, hk * dk - dz * e, -s * dz
        xi = (2 * c / (-b - torch.sqrt(torch.clamp(b * b - 4 * a * c, min=0)))).clamp(0, 1)
        out = xk + xi * wk
    else:
        xi = (v - xk) / wk
    t = xi * (1 - xi)
    den = s + e * t
    ld = 2 * torch.log(s) + torch.log(dk1 * xi * xi + 2 * s * t + dk * (1 - xi) ** 2) - 2 * torch.log(den)
    if inverse:
        ld = -ld
    else:
        out = yk + hk * (s * xi * xi + dk * t) / den
    return torch.where(inside, out, x), torch.where(inside, ld, torch.zeros_like(ld)).sum(1)


class SplineCoupling(torch.nn.Module):
    """NSF coupling: checkerboard mask, conditioner output parameter-major (column p nt + j)."""
    def __init__(self, D, H, parity, K=8):
        super().__init__()
        keep = [j for j in range(D) if j % 2 == parity] if D > 1 else []
        trans = [j for j in range(D) if j not in keep]
        self.register_buffer("keep", torch.tensor(keep, dtype=torch.long))
        self.register_buffer("trans", torch.tensor(trans, dtype=torch.long))
        self.nt, self.K = len(trans), K
        self.net = conditioner(len(keep), H, (3 * K - 1) * self.nt)

    def _map(self, x, inverse):
        u = self.net(x[:, self.keep]).view(x.shape[0], 3 * self.K - 1, self.nt).transpose(1, 2)
        xb, ld = rq_spline(x[:, self.trans], u, self.K, inverse)
        out = x.clone()
        out[:, self.trans] = xb
        return out, ld

    def forward(self, y):
        return self._map(y, False)

    def inverse(self, z):
        return self._map(z, True)


class Made(torch.nn.Module):
    """MAF layer: a masked MLP reads y in an order (natural or reversed) and gives feature j
    its shift t_j (output column j) and raw log-scale (column D + j) from the features
    before it; z = y e^s + t, s = 3 tanh(raw / 3). Degrees as nflow.h: input j has its
    position + 1, hidden unit k has (k mod (D - 1)) + 1; a weight exists from degree m to
    m' >= m (into the outputs: m' > m)."""
    def __init__(self, D, H, reverse, clamp=3.0):
        super().__init__()
        self.D, self.clamp = D, clamp
        pos = torch.arange(D - 1, -1, -1) if reverse else torch.arange(D)   # position of feature j
        din = pos + 1
        dh = torch.arange(H) % max(D - 1, 1) + 1
        dout = torch.cat([din, din])
        self.register_buffer("m1", (dh[:, None] >= din[None, :]).float())
        self.register_buffer("m2", (dh[:, None] >= dh[None, :]).float())
        self.register_buffer("m3", (dout[:, None] > dh[None, :]).float())
        self.net = conditioner(D, H, 2 * D)
        with torch.no_grad():                   # masked weights start (and stay) zero
            for lin, m in zip(self.net[::2], (self.m1, self.m2, self.m3)):
                lin.weight.mul_(m)

    def forward(self, y):
        l1, l2, l3 = self.net[0], self.net[2], self.net[4]
        h = F.relu(F.linear(y, l1.weight * self.m1, l1.bias))
        h = F.relu(F.linear(h, l2.weight * self.m2, l2.bias))
        out = F.linear(h, l3.weight * self.m3, l3.bias)
        t, s = out[:, :self.D], self.clamp * torch.tanh(out[:, self.D:] / self.clamp)
        return y * torch.exp(s) + t, s.sum(1)


class Flow(torch.nn.Module):
    def __init__(self, D, H, L=8, kind="RealNVP"):
        super().__init__()
        self.D = D
        make = {"RealNVP": lambda i: Coupling(D, H, i % 2), "NSF": lambda i: SplineCoupling(D, H, i % 2),
                "MAF": lambda i: Made(D, H, i % 2 == 1)}[kind]
        self.layers = torch.nn.ModuleList([make(i) for i in range(L)])

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


def linear_macs(flow):
    """multiply-adds of the linear layers per row (the GFLOP/s figure counts 6 per MAC)"""
    return sum(m.in_features * m.out_features for m in flow.modules() if isinstance(m, torch.nn.Linear))


def blas_check():
    """One SGEMM of the protocol's largest shape with the kernel in use: its speed and its
    error against float64, max over entries of |C32 - C64| / (|A| |B|) (the bound a
    correct summation meets with K eps, about 1.5e-5 here; typical 1e-7)."""
    gen = torch.Generator().manual_seed(5)
    a, b = torch.randn(512, 256, generator=gen), torch.randn(256, 256, generator=gen)
    c64 = a.double() @ b.double()
    err = ((torch.mm(a, b).double() - c64).abs() / (a.double().abs() @ b.double().abs())).max().item()
    runs = []
    for _ in range(7):
        t0 = time.perf_counter()
        for _ in range(50):
            torch.mm(a, b)
        runs.append((time.perf_counter() - t0) / 50)
    print(json.dumps({"openblas_core": openblas_core(), "blas": blas_in_use(), "sgemm": "512x256x256",
                      "gflops": round(2 * 512 * 256 * 256 / statistics.median(runs) * 1e-9, 2), "max_rel_err": err}))


def main():
    torch.set_num_threads(1)
    blas_threads = openblas_single_thread()
    if "--blas-check" in sys.argv:
        blas_check()
        return
    name = sys.argv[1]
    quick = "--quick" in sys.argv
    D, H, batch, kind = parse_config(name)
    gen = torch.Generator().manual_seed(1234)
    data = make_data(D, 20000, gen)
    torch.manual_seed(0)
    flow = Flow(D, H, kind=kind)
    opt = torch.optim.Adam(flow.parameters(), lr=1e-3)
    macs = linear_macs(flow)

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
            if kind != "MAF":
                t0 = time.perf_counter(); flow.sample(10000); sm.append((time.perf_counter() - t0) * 1e3)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"impl": "torch", "config": name, "steps_per_s": round(sps, 2),
                      "gflops": round(6 * macs * batch * sps * 1e-9, 2),
                      "logprob_10k_ms": round(statistics.median(lp), 3),
                      "sample_10k_ms": round(statistics.median(sm), 3) if sm else None,
                      "train_bytes": rss, "final_loss": round(loss, 4), "torch": torch.__version__,
                      "blas": blas_in_use(), "openblas_core": openblas_core(), "threads": torch.get_num_threads(),
                      "blas_threads": blas_threads}))


if __name__ == "__main__":
    main()
