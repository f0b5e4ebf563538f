"""Scale of the streamed evidence passes (not a test): throughput, worker scaling, memory.

Generates an ImageFolder of 224x224 JPEGs (``--classes`` x ``--per-class``) in a temporary
directory and a randomly initialised torchvision model (default ResNet-50) saved as a
robustness-library checkpoint (``module.model.*``, ``module.attacker.model.*``,
``module.normalizer.*``), then prints in one run:

1. images/s of the streamed Salient features pass (``analysis.streaming``, JPEG decoding in
   DataLoader workers) against the bare forward of the same model on the same images, already
   decoded (goal >= 0.8x), and the decode-only rate of the loader;
2. images/s of the pass with 1 and with 2 worker processes of one torch thread each, each
   running its own shards, merged afterwards (goal >= 1.8x);
3. peak RSS of a worker process running the pass over the first N1 and N2 images (goal: within 10 %).

Every figure is measured in this run; on a shared machine they move with the load.

Usage::

    python bench/evidence_scale.py                                   # the issue's sizes (GPU-sized)
    python bench/evidence_scale.py --per-class 8 --images 64 --rss-images 64,256 --batch 16   # a small CPU run
    python bench/evidence_scale.py --device cuda --batch 256 --amp --loader-workers 8 --threads 8
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections import OrderedDict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


# -- inputs ------------------------------------------------------------------------------------
def make_image_folder(root: Path, classes: int, per_class: int, size: int = 224, seed: int = 0) -> None:
    """``classes`` folders of ``per_class`` JPEGs: smooth colour fields with a few random discs."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    for c in range(classes):
        folder = root / f"n{c:08d}"
        folder.mkdir(parents=True, exist_ok=True)
        tint = rng.uniform(0.2, 1.0, 3)
        for i in range(per_class):
            phase = rng.uniform(0, 6.28, 3)
            image = 0.5 + 0.5 * np.sin(6 * xx[..., None] * tint + 4 * yy[..., None] + phase)
            for _ in range(3):
                cy, cx, r = rng.uniform(0.1, 0.9), rng.uniform(0.1, 0.9), rng.uniform(0.05, 0.2)
                image[(yy - cy) ** 2 + (xx - cx) ** 2 < r * r] = rng.uniform(0, 1, 3)
            Image.fromarray((image * 255).astype(np.uint8)).save(folder / f"{i:05d}.JPEG", quality=90)


def save_robustness_checkpoint(path: Path, arch: str, classes: int, seed: int = 0) -> None:
    """A random torchvision model in the robustness library's layout."""
    import torch

    from analysis.models import build_architecture

    torch.manual_seed(seed)
    model = build_architecture(arch, num_classes=classes)
    state = OrderedDict()
    for key, value in model.state_dict().items():
        state[f"module.model.{key}"] = value
        state[f"module.attacker.model.{key}"] = value
    for name, value in (("mean", (0.485, 0.456, 0.406)), ("std", (0.229, 0.224, 0.225))):
        state[f"module.normalizer.new_{name}"] = torch.tensor(value).view(3, 1, 1)
        state[f"module.attacker.normalizer.new_{name}"] = torch.tensor(value).view(3, 1, 1)
    torch.save({"model": state, "epoch": 0}, path)


# -- one worker process --------------------------------------------------------------------------
def _spec(job: dict):
    from analysis.streaming import DataSource, ModelSource, PassSpec

    return PassSpec(kind="salient", model=ModelSource(job["checkpoint"], job["arch"]),
                    data=DataSource("image_folder", {"root": job["root"], "image_size": 224}),
                    params={"pool": job["pool"]}, indices=list(range(job["images"])), amp=job["amp"])


def _execution(job: dict):
    from analysis.streaming import Execution

    return Execution(batch_size=job["batch"], num_workers=job["loader_workers"], device=job["device"],
                     threads=job["threads"])


def worker(job: dict) -> dict:
    """Run in a fresh process: one measurement, printed as JSON."""
    import torch

    from analysis.streaming import Shard, plan_shards, run_pass, run_shard
    from analysis.streaming.device import resolve_device
    from analysis.streaming.shards import image_loader
    from analysis.streaming.sources import cached_dataset, cached_handle

    torch.set_num_threads(job["threads"])
    spec, execution = _spec(job), _execution(job)
    handle = cached_handle(spec.model, resolve_device(job["device"]))
    digest = spec.digest()  # checkpoint hash and file scan, once, before timing
    device = handle.device

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize()

    out: dict = {}
    if job["what"] == "bare":
        loader = image_loader(cached_dataset(spec.data), spec.index(), execution, device)
        batches = [item["images"] for item in loader]  # decoded beforehand: the model alone is timed
        with torch.no_grad(), torch.autocast(device.type, enabled=job["amp"],
                                             dtype=torch.float16 if device.type == "cuda" else torch.bfloat16):
            handle.module(batches[0][:2].to(device))
            sync()
            started = time.perf_counter()
            for images in batches:
                handle.module(images.to(device, non_blocking=True))
            sync()
        out["seconds"] = time.perf_counter() - started
    elif job["what"] == "decode":
        started = time.perf_counter()
        for _ in image_loader(cached_dataset(spec.data), spec.index(), execution, device):
            pass
        out["seconds"] = time.perf_counter() - started
    elif job["what"] == "pass":
        run_shard(spec, Shard(0, min(job["batch"], len(spec))), execution=execution, handle=handle,
                  digest=digest)  # warm-up batch
        sync()
        started = time.perf_counter()
        run_pass(spec, 1, execution=execution, handle=handle)
        sync()
        out["seconds"] = time.perf_counter() - started
    elif job["what"] == "shards":  # this worker's shards, written for the parent to merge
        shards = plan_shards(len(spec), job["n_workers"], job["batch"])[job["worker"]::job["n_workers"]]
        run_shard(spec, Shard(shards[0].start, shards[0].start + 1), execution=execution, handle=handle,
                  digest=digest)  # warm-up
        Path(job["ready"]).touch()
        while not Path(job["go"]).exists():
            time.sleep(0.01)
        out["start"], cpu_before = time.time(), _cpu_seconds()
        for shard in shards:
            partial = run_shard(spec, shard, execution=execution, handle=handle, digest=digest)
            Path(job["out"], f"{shard.start}.npz").write_bytes(partial.to_bytes())
        sync()
        out["end"], out["cpu"] = time.time(), _cpu_seconds() - cpu_before
        out["images"] = sum(len(s) for s in shards)
    out["maxrss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out["children_maxrss_mb"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return out


def _cpu_seconds() -> float:
    """CPU time of this process and its finished children (the loader workers)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _spawn(job: dict) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": str(job["threads"]), "MKL_NUM_THREADS": str(job["threads"])}
    return subprocess.Popen([sys.executable, __file__, "--worker-job", json.dumps(job)], env=env,
                            stdout=subprocess.PIPE, text=True)


def _result(process: subprocess.Popen) -> dict:
    stdout, _ = process.communicate()
    if process.returncode:
        raise SystemExit(f"a worker process failed (exit {process.returncode})")
    return json.loads(stdout.strip().splitlines()[-1])


def run_worker(job: dict) -> dict:
    return _result(_spawn(job))


def two_workers(job: dict, n_workers: int, scratch: Path) -> dict:
    """``n_workers`` processes started together on their shards; the parent merges the partials."""
    from analysis.streaming import Partial, finish, merge

    out = scratch / f"partials-{n_workers}"
    out.mkdir()
    go = scratch / f"go-{n_workers}"
    ready = [scratch / f"ready-{n_workers}-{w}" for w in range(n_workers)]
    processes = [_spawn({**job, "what": "shards", "worker": w, "n_workers": n_workers, "out": str(out),
                         "go": str(go), "ready": str(ready[w])}) for w in range(n_workers)]
    while not all(r.exists() for r in ready):
        time.sleep(0.01)
    go.touch()
    results = [_result(p) for p in processes]
    spec = _spec(job)
    stats = finish(spec, merge(spec, [Partial.from_bytes(p.read_bytes()) for p in out.glob("*.npz")]))
    seconds = max(r["end"] for r in results) - min(r["start"] for r in results)
    return {"seconds": seconds, "images": sum(r["images"] for r in results), "cpu": sum(r["cpu"] for r in results),
            "per_worker": [r["images"] / (r["end"] - r["start"]) for r in results],
            "classes": int(stats.importance.shape[0])}


# -- the report ------------------------------------------------------------------------------------
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--classes", type=int, default=20)
    parser.add_argument("--per-class", type=int, default=200, help="JPEGs per class folder (default 200: 4,000 images)")
    parser.add_argument("--images", type=int, default=2000, help="images in the throughput and scaling runs")
    parser.add_argument("--rss-images", default="1000,4000", help="two image counts for the peak-RSS comparison")
    parser.add_argument("--arch", default="resnet50")
    parser.add_argument("--device", default=None, help="default: $SALIENT_DEVICE, else cuda when available, else cpu")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--amp", action="store_true", help="automatic mixed precision (bf16 on CPU, fp16 on CUDA)")
    parser.add_argument("--loader-workers", type=int, default=1, help="DataLoader decoding processes per worker")
    parser.add_argument("--threads", type=int, default=1, help="torch threads of a worker process")
    parser.add_argument("--pool", type=int, default=65)
    parser.add_argument("--workdir", default=None, help="keep the generated images and checkpoint here")
    parser.add_argument("--worker-job", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker_job:
        print(json.dumps(worker(json.loads(args.worker_job))))
        return

    rss_sizes = [int(n) for n in args.rss_images.split(",")]
    total = args.classes * args.per_class
    if max(rss_sizes + [args.images]) > total:
        raise SystemExit(f"--images and --rss-images need at most the {total} generated images")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.workdir or tmp)
        root, checkpoint = work / "images", work / f"{args.arch}-robustness.pt"
        started = time.perf_counter()
        if not root.is_dir():
            make_image_folder(root, args.classes, args.per_class)
        if not checkpoint.is_file():
            save_robustness_checkpoint(checkpoint, args.arch, args.classes)
        print(f"inputs: {total} JPEGs 224x224 in {args.classes} classes, random {args.arch} "
              f"(robustness layout), made in {time.perf_counter() - started:.1f} s")
        job = {"root": str(root), "checkpoint": str(checkpoint), "arch": args.arch, "pool": args.pool,
               "images": args.images, "amp": args.amp, "batch": args.batch, "loader_workers": args.loader_workers,
               "device": args.device, "threads": args.threads}
        print(f"settings: device={args.device or 'default'} batch={args.batch} amp={args.amp} "
              f"loader workers={args.loader_workers} torch threads per worker={args.threads} "
              f"pool={args.pool}; host: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")

        bare = run_worker({**job, "what": "bare"})
        decode = run_worker({**job, "what": "decode"})
        streamed = run_worker({**job, "what": "pass"})
        rate = {"bare": args.images / bare["seconds"], "decode": args.images / decode["seconds"],
                "pass": args.images / streamed["seconds"]}
        print(f"\n1. features pass vs bare forward ({args.images} images, one worker process)")
        print(f"{'':34}{'images/s':>10}{'ratio':>8}")
        print(f"{'bare forward (decoded beforehand)':34}{rate['bare']:10.1f}{1.0:8.2f}")
        print(f"{'streamed Salient features pass':34}{rate['pass']:10.1f}{rate['pass'] / rate['bare']:8.2f}"
              f"   goal >= 0.80")
        print(f"{'loader alone (JPEG decode)':34}{rate['decode']:10.1f}{rate['decode'] / rate['bare']:8.2f}")

        one = two_workers(job, 1, work if args.workdir else Path(tmp))
        two = two_workers(job, 2, work if args.workdir else Path(tmp))
        r1, r2 = one["images"] / one["seconds"], two["images"] / two["seconds"]
        print(f"\n2. worker processes of {args.threads} torch thread(s), shards merged afterwards "
              f"({args.images} images)")
        print(f"{'workers':>8}{'images/s':>10}{'scaling':>9}{'per worker':>16}{'CPU s/image':>13}")
        for n, r, rate_n in ((1, one, r1), (2, two, r2)):
            per = " ".join(f"{v:.1f}" for v in r["per_worker"])
            print(f"{n:>8}{rate_n:10.1f}{rate_n / r1:9.2f}{per:>16}{r['cpu'] / r['images']:13.3f}"
                  + ("   goal >= 1.80" if n == 2 else ""))
        print(f"   load average now {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")

        rss = [run_worker({**job, "images": n, "what": "pass"}) for n in rss_sizes]
        print("\n3. peak RSS of a worker process running the pass")
        print(f"{'images':>8}{'worker MB':>11}{'loader MB':>11}{'ratio':>8}")
        for n, r in zip(rss_sizes, rss):
            print(f"{n:>8}{r['maxrss_mb']:11.0f}{r['children_maxrss_mb']:11.0f}"
                  f"{r['maxrss_mb'] / rss[0]['maxrss_mb']:8.2f}")
        print("   goal: within 10 % (ratio <= 1.10)")


if __name__ == "__main__":
    main()
