#!/usr/bin/env python3
"""berth vs runc vs crun, side by side on one bundle (a benchmark, not a test).

Modes, each sample one full lifecycle of /bin/true:
  lifecycle: create --pid-file, start, wait until the init exits, delete
  run:       run (foreground)
Runtimes are interleaved in a shuffled order every round so machine noise hits all of
them alike. Prints medians (ms) and berth/runc, berth/crun ratios; then, in a separate untimed pass,
each runtime's peak RSS per command measured by GNU time (`time` package), next to the
RSS of `/bin/true` under the same GNU time as the baseline (a forked process's peak RSS
includes what its parent had mapped before exec). Ratios are the result: absolute times
depend on the machine.

Usage: runtime.py [--rounds N] [--bundle DIR] [--json OUT] NAME=BINARY ...
"""
import argparse, json, os, random, shutil, statistics, subprocess, sys, tempfile, time

def wait_exit(pid):
    path = f"/proc/{pid}/stat"
    while True:
        try:
            with open(path) as f:
                s = f.read()
        except FileNotFoundError:
            return
        if s.rsplit(")", 1)[1].split()[0] in ("Z", "X"):
            return

def run_rusage(argv):
    """Runs argv, returns (returncode, peak RSS KiB of that process)."""
    # stderr goes to a file: a detached container inherits it, so a pipe never sees EOF.
    with tempfile.TemporaryFile() as errf:
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=errf)
        _, status, ru = os.wait4(p.pid, 0)
        p.returncode = os.waitstatus_to_exitcode(status)
        errf.seek(0)
        err = errf.read().decode(errors="replace")
    if p.returncode != 0:
        raise RuntimeError(f"{argv} failed ({p.returncode}): {err.strip()}")
    return ru.ru_maxrss

def lifecycle(rt, root, bundle, cid):
    pidf = os.path.join(root, cid + ".pid")
    t0 = time.perf_counter()
    rss = run_rusage([rt, "--root", root, "create", "--bundle", bundle, "--pid-file", pidf, cid])
    with open(pidf) as f:
        pid = int(f.read().strip())
    run_rusage([rt, "--root", root, "start", cid])
    wait_exit(pid)
    run_rusage([rt, "--root", root, "delete", cid])
    t = time.perf_counter() - t0
    os.unlink(pidf)
    return t, rss

def run_mode(rt, root, bundle, cid):
    t0 = time.perf_counter()
    rss = run_rusage([rt, "--root", root, "run", "--bundle", bundle, cid])
    return time.perf_counter() - t0, rss

def gnu_time_rss(argv):
    with tempfile.NamedTemporaryFile() as f, tempfile.TemporaryFile() as errf:
        subprocess.run(["/usr/bin/time", "-f", "%M", "-o", f.name] + argv, stdin=subprocess.DEVNULL,
                       stdout=subprocess.DEVNULL, stderr=errf, check=True)
        return int(open(f.name).read().split()[-1])

def peak_rss(rts, roots, bundle):
    res = {"(baseline) true": {"true": max(gnu_time_rss(["/bin/true"]) for _ in range(3))}}
    for n, rt in rts.items():
        r = roots[n]
        vals = {"create": 0, "start": 0, "delete": 0, "run": 0}
        for i in range(3):
            cid = f"rss-{n}-{i}"
            pidf = os.path.join(r, cid + ".pid")
            vals["create"] = max(vals["create"], gnu_time_rss([rt, "--root", r, "create", "--bundle", bundle, "--pid-file", pidf, cid]))
            pid = int(open(pidf).read().strip())
            vals["start"] = max(vals["start"], gnu_time_rss([rt, "--root", r, "start", cid]))
            wait_exit(pid)
            vals["delete"] = max(vals["delete"], gnu_time_rss([rt, "--root", r, "delete", cid]))
            os.unlink(pidf)
            vals["run"] = max(vals["run"], gnu_time_rss([rt, "--root", r, "run", "--bundle", bundle, cid + "r"]))
        res[n] = vals
    return res

def make_bundle(dirpath):
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    subprocess.run(["bash", "-c", f'. "{repo}/integration/lib/common.sh"; make_rootfs "{dirpath}/rootfs"'], check=True)
    with open(os.path.join(repo, "bundles/hello/config.json")) as f:
        cfg = json.load(f)
    cfg["process"]["args"] = ["/bin/true"]
    cfg["process"]["terminal"] = False
    cfg.get("linux", {}).pop("cgroupsPath", None)
    with open(os.path.join(dirpath, "config.json"), "w") as f:
        json.dump(cfg, f)

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=30)
    ap.add_argument("--bundle")
    ap.add_argument("--json")
    ap.add_argument("runtimes", nargs="+")
    a = ap.parse_args()
    rts = dict(r.split("=", 1) for r in a.runtimes)
    work = tempfile.mkdtemp(prefix="berth-bench-")
    bundle = a.bundle or os.path.join(work, "bundle")
    if not a.bundle:
        os.makedirs(bundle)
        make_bundle(bundle)
    roots = {n: os.path.join(work, "root-" + n) for n in rts}
    for r in roots.values():
        os.makedirs(r, exist_ok=True)
    samples = {m: {n: [] for n in rts} for m in ("lifecycle", "run")}
    for mode, fn in (("lifecycle", lifecycle), ("run", run_mode)):
        for n, rt in rts.items():  # warm up page cache and cgroup parents
            fn(rt, roots[n], bundle, f"warm-{n}-{mode}")
        for i in range(a.rounds):
            order = list(rts)
            random.shuffle(order)
            for n in order:
                t, _ = fn(rts[n], roots[n], bundle, f"b{i}-{n}-{mode}")
                samples[mode][n].append(t * 1000)
    out = {"rounds": a.rounds, "modes": {}}
    print(f"rounds={a.rounds}, interleaved, shuffled; times in ms (median / min / max)")
    for mode in samples:
        print(f"\n{mode}:")
        med = {n: statistics.median(v) for n, v in samples[mode].items()}
        out["modes"][mode] = {}
        for n, v in samples[mode].items():
            print(f"  {n:8s} {med[n]:7.2f} / {min(v):6.2f} / {max(v):6.2f}")
            out["modes"][mode][n] = {"median_ms": med[n], "min_ms": min(v), "max_ms": max(v)}
        if "berth" in med:
            for other in med:
                if other != "berth":
                    ratio = med["berth"] / med[other]
                    print(f"  berth/{other} = {ratio:.2f}")
                    out["modes"][mode][f"berth/{other}"] = ratio
    gtime = shutil.which("time") and os.path.exists("/usr/bin/time")
    if gtime:
        out["peak_rss_kib"] = peak_rss(rts, roots, bundle)
        print("\npeak RSS in KiB by GNU time (max of 3), per command:")
        for n, cmds in out["peak_rss_kib"].items():
            print(f"  {n:8s} " + "  ".join(f"{c} {v}" for c, v in cmds.items()))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(out, f, indent=2)
    shutil.rmtree(work, ignore_errors=True)

if __name__ == "__main__":
    main()
