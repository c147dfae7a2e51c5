"""What each cheap request costs to preprocess, before and after issue 21, side by side in one run.

    python benchmarks/preprocessing.py [--before REF] [--timeout 120] [--data DIR]

Each image of tests/image_cases.cheap_requests() goes through THE eval preprocessing at a ResNet50's
224 (presets.eval_image: what the server, the trainer's valid/test splits, the evaluation and batch
transform run) in a fresh process, once with this checkout's classifier/model/decoding.py and once with
commit REF's (default 221f319, main before issue 21: resize the whole image, then crop). Each row: the
seconds and the process's peak memory growth; a case still running after --timeout is stopped and
shown as such. Then parity on the sample set (make_sample_data's 300 JPEGs, 500x400): the largest and
the mean difference in grey levels between REF's arrays and this checkout's, at 224, 64 and 32.
The top-1 of a seeded ResNet18 on both sets of arrays is compared too (how many images change class).

--serve adds what each case costs a server: both serving images (SERVE_IMAGE, SERVE_CPU_IMAGE, as
`make build` tags them) with a ResNet18 at 224 (tests/serving_probes.random_model), each case sent
--repeat times one after another; the slowest answer per case and the slowest case overall are printed.
The servers before issue 21 are not rebuilt here: their figures are in the issue (four 1x20000 PNGs got
the worker SIGKILLed for memory after 17 s).
Writes build/bench-preprocessing/results.json.
"""

from __future__ import annotations

import argparse
import base64
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # tests/ (the crafted cases)
from tests import image_cases  # noqa: E402

WORK = ROOT / "build" / "bench-preprocessing"

# Runs in a fresh process: argv = presets folder, case file. Prints [outcome, seconds, peak growth bytes].
ONE_CASE = """
import importlib.util, json, resource, sys, time
spec = importlib.util.spec_from_file_location("presets_under_test", sys.argv[1])
presets = importlib.util.module_from_spec(spec); spec.loader.exec_module(presets)
images = [open(path, "rb").read() for path in sys.argv[2:]]
prep = presets.eval_preprocessing(224)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
start = time.perf_counter()
outcome = "decoded"
for image in images:
    try:
        presets.eval_image(image, prep)
    except presets.BadImage as err:
        outcome = "refused: " + str(err)[:60]
took = time.perf_counter() - start
print(json.dumps([outcome, took, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - before]))
"""


def images_of(case: image_cases.Cheap) -> list[bytes]:
    """The images a case carries (a JSON body's instances), or none for a case that is not about images."""
    if case.content_type == "application/json":
        try:
            return [base64.b64decode(i["b64"]) for i in json.loads(case.body)["instances"]]
        except (ValueError, RecursionError, TypeError, KeyError):
            return []
    return [case.body] if case.content_type.startswith("image/") else []


def measure(presets_file: Path, images: list[bytes], timeout: float, work: Path) -> dict:
    paths = []
    for i, image in enumerate(images):
        paths.append(work / f"{i}.img")
        paths[-1].write_bytes(image)
    try:
        done = subprocess.run(
            [sys.executable, "-c", ONE_CASE, str(presets_file), *map(str, paths)],
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        return {"outcome": f"stopped after {timeout:g} s", "seconds": None, "peak_mib": None}
    if done.returncode:
        return {
            "outcome": f"died ({done.returncode}): {done.stderr.strip().splitlines()[-1][:80]}",
            "seconds": None,
            "peak_mib": None,
        }
    outcome, seconds, grown = json.loads(done.stdout)
    return {"outcome": outcome, "seconds": seconds, "peak_mib": grown / 2**20}


def parity(before_file: Path, data_dir: Path) -> list[dict]:
    import importlib.util

    import numpy as np

    from classifier.model import decoding

    spec = importlib.util.spec_from_file_location("presets_before", before_file)
    old = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(old)
    files = sorted(data_dir.rglob("*.jpg"))
    rows = []
    for size in (224, 64, 32):
        prep = decoding.eval_preprocessing(size)
        diffs = [np.abs(old.eval_image(f, prep).astype(int) - decoding.eval_image(f, prep).astype(int)) for f in files]
        rows.append(
            {
                "size": size,
                "images": len(files),
                "max": int(max(d.max() for d in diffs)),
                "mean": float(np.mean([d.mean() for d in diffs])),
                "identical": sum(int(d.max() == 0) for d in diffs),
            }
        )
    rows[0]["top1_changed"] = top1_changes(old, files, decoding.eval_preprocessing(224))
    return rows


def top1_changes(old, files: list[Path], prep: dict) -> int:
    """Images whose class under a seeded ResNet18 differs between the two presets' arrays."""
    import numpy as np
    import torch

    from classifier.model import decoding, runtimes
    from classifier.model import network as model_lib

    torch.manual_seed(0)
    runtime = runtimes.TorchRuntime(model_lib.build("resnet18", 133).eval(), prep)
    runtime.start(threads=2)
    changed = 0
    for start in range(0, len(files), 32):
        chunk = files[start : start + 32]
        before = runtime.probabilities(np.stack([old.eval_image(f, prep) for f in chunk])).argmax(1)
        after = runtime.probabilities(np.stack([decoding.eval_image(f, prep) for f in chunk])).argmax(1)
        changed += int((before != after).sum())
    return changed


def serve_costs(data_dir: Path, repeat: int) -> list[dict]:
    """Each case against both serving images: the slowest of `repeat` answers, and its status."""
    import os
    import time

    from tests.serving_probes import VARIANTS, ServingContainer, random_model, urllib_post

    images = {"serve_image": os.environ["SERVE_IMAGE"], "serve_cpu_image": os.environ["SERVE_CPU_IMAGE"]}
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        model_dir = random_model(data_dir, Path(scratch) / "model")
        for variant, (image, env) in VARIANTS.items():
            served = ServingContainer(images[image], model_dir, env)
            try:
                for case in image_cases.cheap_requests():
                    took, statuses = [], set()
                    for _ in range(repeat):
                        start = time.perf_counter()
                        status, _ = urllib_post(served.url, case.body, case.content_type, case.attributes)
                        took.append(time.perf_counter() - start)
                        statuses.add(status)
                    rows.append(
                        {"variant": variant, "case": case.name, "status": sorted(statuses), "slowest_s": max(took)}
                    )
                    print(f"| {variant} | {case.name} | {sorted(statuses)} | {max(took):.3f} s |", flush=True)
                restarts = served.logs().count("Booting worker") - 1
                print(f"{variant}: {restarts} worker restart(s)")
            finally:
                served.close()
    return rows


def cell(row: dict) -> str:
    if row["seconds"] is None:
        return f"{row['outcome']} | |"
    return f"{row['outcome'][:40]} | {row['seconds']:.3f} s, {row['peak_mib']:.0f} MiB |"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", default="221f319", help="the commit whose presets.py is the baseline")
    parser.add_argument("--timeout", type=float, default=120, help="seconds a case may run")
    parser.add_argument("--data", type=Path, help="sample set for parity (default: made under build/)")
    parser.add_argument("--serve", action="store_true", help="also time each case against both serving images")
    parser.add_argument("--repeat", type=int, default=3, help="--serve: answers per case (the slowest is shown)")
    args = parser.parse_args()
    WORK.mkdir(parents=True, exist_ok=True)
    before_file = WORK / f"presets-{args.before}.py"
    before_file.write_text(
        subprocess.run(
            ["git", "-C", str(ROOT), "show", f"{args.before}:container_src/classifier/presets.py"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )
    after_file = ROOT / "container_src" / "classifier" / "model" / "decoding.py"
    results = []
    print(f"| case | bytes | {args.before}: outcome | time, memory | this checkout: outcome | time, memory |")
    print("|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as scratch:
        for case in image_cases.cheap_requests():
            images = images_of(case)
            if not images:
                continue
            row = {
                "case": case.name,
                "bytes": len(case.body),
                "before": measure(before_file, images, args.timeout, Path(scratch)),
                "after": measure(after_file, images, args.timeout, Path(scratch)),
            }
            results.append(row)
            print(f"| {case.name} | {len(case.body):,} | {cell(row['before'])} {cell(row['after'])}", flush=True)
    slowest = max(results, key=lambda r: r["after"]["seconds"] or 0)
    print(
        f"\nslowest case now: {slowest['case']}, {slowest['after']['seconds']:.3f} s, "
        f"{slowest['after']['peak_mib']:.0f} MiB"
    )
    data_dir = args.data or WORK / "sample-data"
    if not (data_dir / "test").is_dir():
        from classifier_host.data import samples

        samples.make(data_dir)
    same = parity(before_file, data_dir)
    print(f"\nparity with {args.before} on {data_dir}:")
    for row in same:
        print(
            f"  at {row['size']}: {row['images']} images, largest difference {row['max']} grey level(s), mean "
            f"{row['mean']:.4f}, {row['identical']} identical"
        )
    print(f"  top-1 of a seeded ResNet18 at 224: {same[0]['top1_changed']} of {same[0]['images']} images change class")
    served = []
    if args.serve:
        print("\n| image | case | status | slowest answer |\n|---|---|---|---|")
        served = serve_costs(data_dir, args.repeat)
        worst = max(served, key=lambda r: r["slowest_s"])
        print(f"\nslowest served case: {worst['case']} on {worst['variant']}, {worst['slowest_s']:.3f} s")
    (WORK / "results.json").write_text(
        json.dumps({"before": args.before, "cases": results, "parity": same, "served": served}, indent=2) + "\n"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
