#!/usr/bin/python3
"""emcee on the benchmark posteriors of models.h, through the very same C densities.

    /usr/bin/python3 bench/posteriors/emcee_run.py [--models a,b] [--seeds 3] [--cost-us 100]
                                                   [--max-steps 50000] [--out FILE]

Needs Debian's python3-emcee and python3-numpy (python3-scipy optional: L-BFGS for the
MAP, else a BFGS written here). Builds libmodels.c into build/posteriors/libmodels.so
(repo root) and calls it through ctypes: emcee evaluates the nf_log_density_fn that nflow
calls.

Coordinates: emcee runs in nflow's unconstrained coordinates, u = log(x - lo) for a lower
bound and u = logit((x - lo) / (hi - lo)) for an interval, and samples
    log p(u) = log p(x(u)) + sum_j log |dx_j / du_j|
with log|dx/du| = u (lower bound) and log(hi - lo) + log s + log(1 - s), s = sigmoid(u)
(interval). Draws are mapped back to x before they are compared with the references.

Protocol per model and seed: the MAP of log p(u) (best of 8 starts: u = 0 and 7 draws of
N(0, 1) per coordinate), walkers = max(32, 4 dim) started at MAP + 1e-4 N(0, I) (emcee's
documented ball), the stretch move, and emcee's documented stopping rule: every 1,000 steps
estimate the integrated autocorrelation time tau (get_autocorr_time(tol=0)); stop when the
chain is longer than 50 tau for every parameter and every tau changed by less than 1%
since the previous check, or at --max-steps (then "rule not met"). Then discard 2 max(tau),
thin by max(1, min(tau) / 2). ESS = walkers * (steps - burn-in) / tau per parameter.
Accuracy: max over parameters of |mean - ref| / sd_ref and the range of sd / sd_ref (model
coordinates), and for the mixtures the fraction of draws in component 1 against its weight.
--cost-us N makes every evaluated point busy-wait N microseconds inside the C library.
Wall time (and CPU time, steadier on a shared machine) covers the MAP search and sampling.
Prints a table of medians over the seeds and writes emcee_results.json beside this file.
"""
import argparse, ctypes, json, math, os, platform, subprocess, sys, time
import numpy as np
import emcee

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
LOWER, INTERVAL = 2, 1                                   # NF_DOMAIN_LOWER, NF_DOMAIN_INTERVAL


def build_lib():
    out = os.path.join(ROOT, "build", "posteriors")
    os.makedirs(out, exist_ok=True)
    so = os.path.join(out, "libmodels.so")
    srcs = [os.path.join(HERE, f) for f in ("libmodels.c", "models.h", "models_data.h", "models_ref.h")]
    srcs.append(os.path.join(ROOT, "nflow.h"))
    if not os.path.exists(so) or max(os.path.getmtime(s) for s in srcs) > os.path.getmtime(so):
        subprocess.check_call(["gcc", "-std=c99", "-O2", "-DNFLOW_DOUBLE", "-fPIC", "-shared",
                               os.path.join(HERE, "libmodels.c"), "-o", so, "-lm"])
    lib = ctypes.CDLL(so)
    dp, ip, sz = ctypes.POINTER(ctypes.c_double), ctypes.c_int, ctypes.c_size_t
    for name, res, args in [("bm_count", ip, []), ("bm_name", ctypes.c_char_p, [ip]), ("bm_dim", ip, [ip]),
                            ("bm_param_name", ctypes.c_char_p, [ip, ip]), ("bm_domain", ip, [ip, ip, dp, dp]),
                            ("bm_logp", ip, [ip, dp, sz, dp]), ("bm_logp_grad", ip, [ip, dp, sz, dp, dp]),
                            ("bm_ref_mean", ctypes.c_double, [ip, ip]), ("bm_ref_sd", ctypes.c_double, [ip, ip]),
                            ("bm_ref_log_z", ctypes.c_double, [ip]), ("bm_n_comp", ip, [ip]),
                            ("bm_comp_weight", ctypes.c_double, [ip, ip]), ("bm_component", ip, [ip, dp])]:
        f = getattr(lib, name); f.restype = res; f.argtypes = args
    return lib


class Model:
    def __init__(self, lib, i):
        self.lib, self.i = lib, i
        self.name = lib.bm_name(i).decode()
        self.dim = lib.bm_dim(i)
        lo, hi = ctypes.c_double(), ctypes.c_double()
        kinds, self.lo, self.hi = [], [], []
        for j in range(self.dim):
            kinds.append(lib.bm_domain(i, j, ctypes.byref(lo), ctypes.byref(hi)))
            self.lo.append(lo.value); self.hi.append(hi.value)
        self.kind = np.array(kinds); self.lo = np.array(self.lo); self.hi = np.array(self.hi)
        self.low = self.kind == LOWER; self.itv = self.kind == INTERVAL
        self.ref_mean = np.array([lib.bm_ref_mean(i, j) for j in range(self.dim)])
        self.ref_sd = np.array([lib.bm_ref_sd(i, j) for j in range(self.dim)])
        self.n_comp = lib.bm_n_comp(i)
        self.weights = [lib.bm_comp_weight(i, k) for k in range(self.n_comp)]

    def to_x(self, u):
        """x, log|dx/du| (per row) and dx/du, d log|dx/du| / du from u (rows)."""
        with np.errstate(over="ignore"):                  # far walkers: x = inf, log p = -inf
            return self._to_x(np.atleast_2d(u))

    def _to_x(self, u):
        x = u.copy(); dx = np.ones_like(u); dlj = np.zeros_like(u); lj = np.zeros(len(u))
        if self.low.any():
            e = np.exp(u[:, self.low])
            x[:, self.low] = self.lo[self.low] + e
            dx[:, self.low] = e; dlj[:, self.low] = 1; lj += u[:, self.low].sum(1)
        if self.itv.any():
            ui = u[:, self.itv]; w = self.hi[self.itv] - self.lo[self.itv]
            s = 0.5 * (1 + np.tanh(0.5 * ui))
            x[:, self.itv] = self.lo[self.itv] + w * s
            dx[:, self.itv] = w * s * (1 - s); dlj[:, self.itv] = 1 - 2 * s
            lj += (np.log(w) - np.logaddexp(0, ui) - np.logaddexp(0, -ui)).sum(1)
        return x, lj, dx, dlj

    def logp_x(self, x, grad=False):
        x = np.ascontiguousarray(x, dtype=np.float64)
        n = len(x); lp = np.empty(n)
        dp = ctypes.POINTER(ctypes.c_double)
        if grad:
            g = np.empty_like(x)
            self.lib.bm_logp_grad(self.i, x.ctypes.data_as(dp), n, lp.ctypes.data_as(dp), g.ctypes.data_as(dp))
            return lp, g
        self.lib.bm_logp(self.i, x.ctypes.data_as(dp), n, lp.ctypes.data_as(dp))
        return lp

    def logp_u(self, u):
        x, lj, _, _ = self.to_x(u)
        lp = self.logp_x(x) + lj
        lp[~np.isfinite(lp)] = -np.inf
        return lp

    def neg_u_and_grad(self, u):
        x, lj, dx, dlj = self.to_x(u)
        lp, g = self.logp_x(x, grad=True)
        f = lp[0] + lj[0]
        if not np.isfinite(f):
            return 1e300, np.zeros_like(u)
        return -f, -(g[0] * dx[0] + dlj[0])

    def component(self, x):
        dp = ctypes.POINTER(ctypes.c_double)
        xr = np.ascontiguousarray(x, dtype=np.float64)
        return np.array([self.lib.bm_component(self.i, r.ctypes.data_as(dp)) for r in xr])


def bfgs(fg, u0, iters=2000):
    """BFGS with a backtracking (Armijo) line search: the fallback when scipy is missing."""
    u = u0.copy(); f, g = fg(u); H = np.eye(len(u))
    for _ in range(iters):
        d = -H @ g
        if g @ d >= 0:
            H = np.eye(len(u)); d = -g
        t = 1.0
        while True:
            un = u + t * d; fn, gn = fg(un)
            if fn <= f + 1e-4 * t * (g @ d) or t < 1e-16:
                break
            t *= 0.5
        s, y = un - u, gn - g
        u, f, g = un, fn, gn
        if np.max(np.abs(g)) < 1e-8 or np.max(np.abs(s)) < 1e-14:
            break
        sy = s @ y
        if sy > 1e-300:
            r = 1 / sy; I = np.eye(len(u))
            H = (I - r * np.outer(s, y)) @ H @ (I - r * np.outer(y, s)) + r * np.outer(s, s)
    return u, f


def find_map(model, rng):
    try:
        from scipy.optimize import minimize
        opt = lambda u0: (lambda r: (r.x, r.fun))(minimize(model.neg_u_and_grad, u0, jac=True, method="L-BFGS-B",
                                                           options={"maxiter": 20000, "maxfun": 40000}))
        how = "scipy L-BFGS-B"
    except ImportError:
        opt = lambda u0: bfgs(model.neg_u_and_grad, u0)
        how = "BFGS (own)"
    best = None
    for k in range(8):
        u0 = np.zeros(model.dim) if k == 0 else rng.standard_normal(model.dim)
        u, f = opt(u0)
        if best is None or f < best[1]:
            best = (u, f)
    return best[0], -best[1], how


def run_one(model, seed, max_steps, check_every=1000):
    lib = model.lib
    rng = np.random.default_rng(seed)
    ev0 = ctypes.c_ulonglong.in_dll(lib, "bm_evals").value
    t0, c0 = time.perf_counter(), time.process_time()
    u_map, lp_map, how = find_map(model, rng)
    ev_map = ctypes.c_ulonglong.in_dll(lib, "bm_evals").value - ev0
    nw = max(32, 4 * model.dim)
    p0 = u_map + 1e-4 * rng.standard_normal((nw, model.dim))
    np.random.seed(seed)            # the sampler copies numpy's global state when it is made
    sampler = emcee.EnsembleSampler(nw, model.dim, model.logp_u, vectorize=True,
                                    moves=emcee.moves.StretchMove())
    old_tau, converged, steps = np.inf, False, 0
    for _ in sampler.sample(p0, iterations=max_steps, progress=False):
        steps = sampler.iteration
        if steps % check_every:
            continue
        tau = sampler.get_autocorr_time(tol=0)
        if np.all(np.isfinite(tau)) and np.all(tau * 50 < steps) and np.all(np.abs(old_tau - tau) / tau < 0.01):
            converged = True
            break
        old_tau = tau
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    evals = ctypes.c_ulonglong.in_dll(lib, "bm_evals").value - ev0
    tau = sampler.get_autocorr_time(tol=0)
    burn = int(2 * np.max(tau)) if np.all(np.isfinite(tau)) else steps // 2
    burn = min(burn, steps // 2)                         # a failed rule can give tau > steps / 2
    thin = max(1, int(0.5 * np.min(tau))) if np.all(np.isfinite(tau)) else 1
    u = sampler.get_chain(discard=burn, thin=thin, flat=True)
    x = model.to_x(u)[0]
    mean, sd = x.mean(0), x.std(0, ddof=1)
    err = np.abs(mean - model.ref_mean) / model.ref_sd
    ratio = sd / model.ref_sd
    rec = dict(model=model.name, dim=model.dim, seed=seed, walkers=nw, map_optimizer=how, map_logp_u=float(lp_map),
               map_evals=int(ev_map), evals=int(evals), steps=int(steps), wall_s=wall, cpu_s=cpu, converged=converged,
               tau_max=float(np.max(tau)), tau_min=float(np.min(tau)), fifty_tau_met=bool(np.all(50 * tau < steps)),
               ess_min=float(nw * (steps - burn) / np.max(tau)), burn=burn, thin=thin, draws=int(len(x)),
               acceptance=float(np.mean(sampler.acceptance_fraction)),
               mean_err_max=float(np.max(err)), worst_mean_param=lib.bm_param_name(model.i, int(np.argmax(err))).decode(),
               sd_ratio_min=float(np.min(ratio)), sd_ratio_max=float(np.max(ratio)))
    if model.n_comp:
        sub = x[np.linspace(0, len(x) - 1, min(len(x), 20000)).astype(int)]
        c = model.component(sub)
        rec["weight1"] = float(np.mean(c == 0)); rec["weight1_ref"] = model.weights[0]
    return rec


def cpu_name():
    name = platform.processor() or "?"
    fam = mod = "?"
    try:
        for line in open("/proc/cpuinfo"):
            k, _, v = line.partition(":")
            k, v = k.strip(), v.strip()
            if k == "model name": name = v
            elif k == "cpu family": fam = v
            elif k == "model" and mod == "?": mod = v
    except OSError:
        pass
    return "%s (family %s, model %s)" % (name, fam, mod)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", default="", help="comma-separated names (default: all)")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--cost-us", type=float, default=0.0, help="busy-wait per evaluated point (microseconds)")
    ap.add_argument("--max-steps", type=int, default=50000, help="ensemble steps before giving up")
    ap.add_argument("--out", default=os.path.join(HERE, "emcee_results.json"))
    a = ap.parse_args()
    lib = build_lib()
    ctypes.c_double.in_dll(lib, "bm_cost_us").value = a.cost_us
    models = [Model(lib, i) for i in range(lib.bm_count())]
    if a.models:
        want = a.models.split(",")
        models = [m for m in models if m.name in want]
    runs, summary = [], []
    hdr = ("%-26s %3s %4s %5s %10s %8s %8s %8s %8s %9s %13s %s"
           % ("model", "dim", "walk", "rule", "evals", "wall s", "cpu s", "tau max", "ESS min", "|dmean|/sd", "sd/sd_ref", "w1 (ref)"))
    print(hdr); print("-" * len(hdr)); sys.stdout.flush()
    for m in models:
        rs = [run_one(m, 1000 + s, a.max_steps) for s in range(a.seeds)]
        runs += rs
        med = lambda k: float(np.median([r[k] for r in rs]))
        s = dict(model=m.name, dim=m.dim, walkers=rs[0]["walkers"], converged=sum(r["converged"] for r in rs), seeds=len(rs),
                 evals=med("evals"), wall_s=med("wall_s"), cpu_s=med("cpu_s"), tau_max=med("tau_max"), ess_min=med("ess_min"),
                 mean_err_max=med("mean_err_max"), sd_ratio_min=med("sd_ratio_min"), sd_ratio_max=med("sd_ratio_max"))
        w = ""
        if m.n_comp:
            s["weight1"] = med("weight1"); s["weight1_ref"] = m.weights[0]
            w = "%.2f (%.2f)" % (s["weight1"], m.weights[0])
        summary.append(s)
        print("%-26s %3d %4d %3d/%d %10.0f %8.1f %8.1f %8.1f %8.0f %9.3f %6.3f-%-6.3f %s"
              % (m.name, m.dim, s["walkers"], s["converged"], len(rs), s["evals"], s["wall_s"], s["cpu_s"], s["tau_max"],
                 s["ess_min"], s["mean_err_max"], s["sd_ratio_min"], s["sd_ratio_max"], w))
        sys.stdout.flush()
    res = dict(cpu=cpu_name(), emcee=emcee.__version__, numpy=np.__version__, cost_us=a.cost_us,
               max_steps=a.max_steps, seeds=a.seeds, summary=summary, runs=runs)
    old = {}
    if os.path.exists(a.out):
        try:
            old = json.load(open(a.out))
        except ValueError:
            old = {}
    key = "cost_us_%g" % a.cost_us
    old[key] = res
    with open(a.out, "w") as f:
        json.dump(old, f, indent=1)
    print("medians over %d seeds; cost %g us per point; %s; written to %s [%s]" % (a.seeds, a.cost_us, cpu_name(), a.out, key))


if __name__ == "__main__":
    main()
