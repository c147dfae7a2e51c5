"""Serving benchmark: latency and throughput of each runtime and serving image against TorchServe 0.12.

    python benchmarks/serving.py [--image SERVE_IMAGE] [--cpu-image SERVE_CPU_IMAGE] [--seconds 20]
                                 [--concurrency 1 4 16] [--no-torchserve]
    python benchmarks/serving.py --against REF [--repeats 3]   # this code against commit REF's server
    python benchmarks/serving.py --attack                       # memory peak under the hardening attack
    python benchmarks/serving.py --explain                      # what explain=gradcam costs, and what not
    python benchmarks/serving.py --cold-start [--repeats 5]     # cold start, default vs serverless settings

Same machine, same model, same ~500x400 JPEGs, same HTTP load generator (threads, one keep-alive
connection each). The model: a ResNet50 at 224 with 133 outputs (the dog set's), whose head is fitted
on the sample set's 5 classes (no pretrained weights can be downloaded here; a fitted head makes
accuracy and int8 agreement mean something), exported by the trainer's own code (classifier/training/export.py:
ONNX fp32 and static int8, each scored on the sample test split). Rows:
  - each runtime alone (runtimes.py, the server's forward pass) at batch 8 and at batch 1, in this
    process with as many threads as cores: the ceiling any server can approach;
  - the serve image with SERVING_RUNTIME=torch (the fp32 server of before: the baseline), onnx and
    onnx-int8; the serve image with batching off (torch); the serve-cpu image with `auto`;
  - TorchServe 0.12 with its defaults and stock image_classifier handler, installed into a venv of
    its own under build/ (never the project venv; its torch comes from the project venv via a .pth).
Also measures each image's size and cold start (docker run -> first 200 on /ping). The load generator
shares the cores with the server: its CPU share is reported beside every row.
Writes build/bench-serving/results.json and serving.png; prints a Markdown table for the README.

--against REF: this checkout's serving image and the same image with commit REF's serving code and
serving packages (`git archive REF`), one container each, loaded in turn (A B A B ...) at the last
--concurrency, `--repeats` times each;
prints the median req/s and p99 of each and their ratio (so a change to the server is judged
against its predecessor in one run, under the same noise).
--attack: the requests of tests/image_cases.attack() all at once against the container with this
benchmark's ResNet50, then the container's cgroup memory before and at its peak.
--explain: the ONNX exports with the CAM output (what the trainer writes for this model) against the same
exports without it (logits only), alone at batch 8, interleaved: what carrying explanations costs requests
that do not ask for them, and whether their answers change; then each runtime's explain pass alone and
each image's latency with and without explain=gradcam through the server, one client.
--cold-start: each image (serve on its default runtime, serve-cpu on auto) in its default environment and
in a serverless endpoint's (deploy.py --serverless: SERVING_MAX_PAYLOAD_MB=4, SAGEMAKER_MODEL_SERVER_WORKERS=1,
docker --memory 3g --memory-swap 3g: the default 3072 MB, no swap), `--repeats` times each, interleaved:
seconds from `docker run` to the first 200 on /ping and to the first answered POST /invocations (one of the
JPEGs), and the cgroup's memory peak; prints the medians, min-max and the ratio serverless/default of each
image; writes build/bench-serving/cold_start.json.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # tests/ (its image cases and the serving probe)
from classifier.model import (  # noqa: E402
    artifact,
    decoding,
    explanations,
    forward,
    gradcam,
    runtimes,
    selection,
)
from classifier.model import network as model_lib  # noqa: E402
from classifier.training import data, export  # noqa: E402
from classifier_host.data import samples as sample_set  # noqa: E402
from tests import image_cases  # noqa: E402
from tests.serving_probes import ServingContainer, cgroup_memory, urllib_post  # noqa: E402

WORK = ROOT / "build" / "bench-serving"
TS_VENV = ROOT / "build" / "torchserve-venv"
TS_PINS = ["torchserve==0.12.0", "torch-model-archiver==0.12.0", "pyyaml==6.0.3", "captum==0.9.0"]
TS_PORT = 8090  # 8080 belongs to SageMaker local mode endpoints
NUM_CLASSES, IMAGE_SIZE, MODEL = 133, 224, "resnet50"
BASELINE = "serve, torch fp32 (the server of before)"


# ---- inputs
def make_model(model_dir: Path) -> None:
    """The benchmark's artifact, as the trainer writes it (model.pt, exports, scores, check set); cached."""
    if (model_dir / artifact.METADATA_FILE).is_file() and "explanation" in artifact.load_metadata(model_dir):
        return
    shutil.rmtree(model_dir, ignore_errors=True)
    sample = WORK / "sample-data"
    if not (sample / "test").is_dir():
        sample_set.make(sample, per_class=(40, 10, 20), width=500, height=400)
    names = [name for name, _, _ in sample_set.CLASSES]
    classes = names + [f"{i:03d}.unused_{i}" for i in range(len(names) + 1, NUM_CLASSES + 1)]
    prep = decoding.eval_preprocessing(IMAGE_SIZE)
    splits = {split: data.list_samples(sample / split, names) for split in ("train", "test")}
    images = {
        split: torch.from_numpy(np.stack([decoding.eval_image(p, prep) for p, _ in samples]))
        for split, samples in splits.items()
    }
    labels = {split: torch.tensor([label for _, label in samples]) for split, samples in splits.items()}
    torch.manual_seed(0)
    network = model_lib.build(MODEL, NUM_CLASSES)
    fit_batchnorm(network, images["train"], prep)
    fit_head(network, images["train"], labels["train"], prep)
    test = runtimes.TorchRuntime(network, prep).probabilities(images["test"])
    test_acc = float((test.argmax(1) == labels["test"].numpy()).mean())
    explanation = gradcam.locate(network, IMAGE_SIZE)
    artifact.save(
        model_dir,
        network.state_dict(),
        classes=classes,
        model_name=MODEL,
        image_size=IMAGE_SIZE,
        preprocessing=prep,
        hyperparameters={},
        metrics={"test_acc": test_acc},
        export={"enabled": True},
        explanation=explanation,
    )
    calibration = export.calibration_images(splits["train"], prep, seed=0)
    np.save(model_dir.parent / "calibration.npy", calibration, allow_pickle=False)  # --explain re-exports with it
    outcome = export.export_and_evaluate(
        network, prep, model_dir, images["test"], labels["test"], calibration, explanation
    )
    artifact.record_runtimes(
        model_dir, outcome.scores, {"enabled": True, "seconds": round(outcome.seconds, 2), "skipped": outcome.skipped}
    )


def fit_batchnorm(network, images: torch.Tensor, prep: dict) -> None:
    """BatchNorm statistics of the sample images (a forward pass in train mode, no gradients): a random
    network's default statistics (mean 0, variance 1) let activations grow layer after layer, a range
    no trained network has and int8 would misrepresent."""
    for module in network.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            module.reset_running_stats()
            module.momentum = None  # a cumulative average over all batches
    network.train()
    with torch.no_grad():
        for i in range(0, len(images), 16):
            network(forward.normalize(images[i : i + 16], prep))
    network.eval()


def fit_head(network, images: torch.Tensor, labels: torch.Tensor, prep: dict) -> None:
    """Logistic regression of the head (all 133 outputs) on the frozen random backbone's pooled features."""
    head = network.fc
    network.fc = torch.nn.Identity()
    with torch.inference_mode():
        features = torch.cat([forward.logits(network, images[i : i + 16], prep) for i in range(0, len(images), 16)])
    network.fc = head
    features = features.clone()
    optimizer = torch.optim.LBFGS(head.parameters(), max_iter=200)

    def closure():
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(head(features), labels) + 1e-4 * head.weight.square().sum()
        loss.backward()
        return loss

    optimizer.step(closure)


def make_images(count: int) -> list[bytes]:
    import io

    import numpy as np

    rng = np.random.default_rng(0)
    shapes = sample_set.CLASSES
    images = []
    for i in range(count):
        _, shape, colour = shapes[i % len(shapes)]
        buffer = io.BytesIO()
        sample_set.draw(shape, colour, 500, 400, rng).save(buffer, "JPEG", quality=90)
        images.append(buffer.getvalue())
    return images


def runtime_alone(model_dir: Path, name: str, images: list[bytes], batch: int, seconds: float) -> float:
    """Images/s of runtime `name` (the server's own forward pass) at `batch`, decoding excluded, all cores."""
    metadata = artifact.load_metadata(model_dir)
    runtime = selection.build(model_dir, name, metadata, os.cpu_count())
    runtime.start(os.cpu_count() or 1)
    x = np.stack([decoding.eval_image(images[i % len(images)], metadata["preprocessing"]) for i in range(batch)])
    runtime.probabilities(x)  # warm-up
    return images_per_second(runtime, x, seconds)


def images_per_second(runtime, batch: np.ndarray, seconds: float) -> float:
    """`runtime.probabilities(batch)` again and again for `seconds`: images per second."""
    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        runtime.probabilities(batch)
        done += len(batch)
    return done / (time.perf_counter() - start)


# ---- --explain
def plain_exports(model_dir: Path) -> Path:
    """The artifact's exports again without the CAM output (logits only): what requests that do not ask
    for explanations ran on before; same network, same calibration images."""
    plain = WORK / "model-plain"
    if (plain / artifact.RUNTIME_FILES[runtimes.ONNX_INT8]).is_file():
        return plain
    plain.mkdir(parents=True, exist_ok=True)
    network, metadata = artifact.load(model_dir)
    prep = metadata["preprocessing"]
    fp32, int8 = (plain / artifact.RUNTIME_FILES[name] for name in (runtimes.ONNX, runtimes.ONNX_INT8))
    export.export_fp32(network, prep["crop"], fp32)
    export.quantize_int8(fp32, int8, np.load(WORK / "calibration.npy", allow_pickle=False), prep)
    return plain


def explanation_costs(model_dir: Path, image: str, cpu_image: str, images: list[bytes], seconds: float) -> dict:
    metadata = artifact.load_metadata(model_dir)
    prep = metadata["preprocessing"]
    plain = plain_exports(model_dir)
    batch = np.stack([decoding.eval_image(images[i % len(images)], prep) for i in range(8)])
    test = np.stack(
        [
            decoding.eval_image(path, prep)
            for path, _ in data.list_samples(
                WORK / "sample-data" / "test", [c for c in metadata["classes"] if "unused" not in c]
            )
        ]
    )
    result = {"explanation": metadata["explanation"], "without_explain": {}, "explain_alone_ms": {}, "server": []}
    for name in (runtimes.ONNX, runtimes.ONNX_INT8):
        pair = {
            "with the CAM output": runtimes.OnnxRuntime(name, model_dir / artifact.RUNTIME_FILES[name], prep),
            "logits only": runtimes.OnnxRuntime(name, plain / artifact.RUNTIME_FILES[name], prep),
        }
        for runtime in pair.values():
            runtime.start(os.cpu_count())
            runtime.probabilities(batch)
        speeds = {label: [] for label in pair}
        for _ in range(4):  # interleaved, so both see the same noise
            for label, runtime in pair.items():
                speeds[label].append(images_per_second(runtime, batch, seconds / 4))
        answers = {label: runtimes.probabilities_in_batches(runtime, test, 16) for label, runtime in pair.items()}
        a, b = answers.values()
        result["without_explain"][name] = {
            **{f"{label} img/s": statistics.median(v) for label, v in speeds.items()},
            "max probability difference": float(np.abs(a - b).max()),
            "top-1 identical": float((a.argmax(1) == b.argmax(1)).mean()),
        }
        print(name, result["without_explain"][name], flush=True)
    for name in runtimes.NAMES:
        runtime = selection.build(model_dir, name, metadata, os.cpu_count())
        runtime.start(os.cpu_count() or 1)
        one = batch[:1]
        for function in ("probabilities", "explain"):
            getattr(runtime, function)(one)
            times = []
            for _ in range(10):
                start = time.perf_counter()
                out = getattr(runtime, function)(one)
                if function == "explain":  # and what the server adds: the heatmap and both PNGs
                    explanations.record(out[1][0], one[0], prep, metadata["explanation"]["layer"], "x", 0)
                times.append(time.perf_counter() - start)
            result["explain_alone_ms"].setdefault(name, {})[function] = 1000 * statistics.median(times)
        print(name, result["explain_alone_ms"][name], flush=True)
    for label, ref, env in (("serve", image, {"SERVING_RUNTIME": "torch"}), ("serve-cpu, auto", cpu_image, {})):
        server = ServingContainer(ref, model_dir, env, ping_deadline_s=120)
        try:
            load(server.url, server.path, server.headers, images, 1, 3)
            for attributes in ("top_k=5", "top_k=5,explain=gradcam"):
                headers = {**server.headers, "X-Amzn-SageMaker-Custom-Attributes": attributes}
                row = {
                    "server": label,
                    "runtime": server.runtime,
                    "attributes": attributes,
                    **load(server.url, server.path, headers, images, 1, seconds),
                }
                result["server"].append(row)
                print(
                    f"{label} ({server.runtime}) {attributes}: {row['throughput']:.1f} req/s,"
                    f" p50 {row['p50_ms']:.0f} ms, failures {row['failures']}",
                    flush=True,
                )
        finally:
            server.close()
    return result


def explanation_tables(result: dict) -> str:
    lines = [
        "| runtime | img/s, exports with the CAM output | img/s, logits only | ratio | "
        "max probability difference | top-1 identical |",
        "|---|---|---|---|---|---|",
    ]
    for name, row in result["without_explain"].items():
        with_cam, plain = row["with the CAM output img/s"], row["logits only img/s"]
        lines.append(
            f"| {name} | {with_cam:.1f} | {plain:.1f} | {with_cam / plain:.2f} | "
            f"{row['max probability difference']:.2g} | {row['top-1 identical']:.3f} |"
        )
    lines += [
        "",
        "| runtime | forward pass, 1 image (ms) | explain pass + heatmap + PNGs, 1 image (ms) |",
        "|---|---|---|",
    ]
    lines += [
        f"| {name} | {row['probabilities']:.1f} | {row['explain']:.1f} |"
        for name, row in result["explain_alone_ms"].items()
    ]
    lines += [
        "",
        "| server (runtime) | without explain: req/s (p50 ms) | explain=gradcam: req/s (p50 ms) |",
        "|---|---|---|",
    ]
    for plain, explained in zip(result["server"][::2], result["server"][1::2], strict=True):
        lines.append(
            f"| {plain['server']} ({plain['runtime']}) | {plain['throughput']:.1f} ({plain['p50_ms']:.0f}) | "
            f"{explained['throughput']:.1f} ({explained['p50_ms']:.0f}) |"
        )
    return "\n".join(lines)


# ---- load generator
def load(url: str, path: str, headers: dict, images: list[bytes], concurrency: int, seconds: float) -> dict:
    """`concurrency` threads, each sending the next image as soon as its answer came back."""
    target = urlparse(url)
    latencies: list[float] = []
    failures: list[str] = []
    lock = threading.Lock()
    stop_at = time.perf_counter() + seconds

    def client(index: int) -> None:
        connection = http.client.HTTPConnection(target.hostname, target.port, timeout=120)
        i = index
        while time.perf_counter() < stop_at:
            body = images[i % len(images)]
            i += concurrency
            start = time.perf_counter()
            try:
                connection.request("POST", path, body=body, headers=headers)
                answer = connection.getresponse()
                answer.read()
                ok = answer.status == 200
            except (OSError, http.client.HTTPException) as err:
                ok, answer = False, err
                connection.close()
            elapsed = time.perf_counter() - start
            with lock:
                (latencies.append(elapsed) if ok else failures.append(str(getattr(answer, "status", answer))))
        connection.close()

    cpu_before, wall_before = _cpu_seconds(), time.perf_counter()
    workers = [threading.Thread(target=client, args=(i,)) for i in range(concurrency)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    wall = time.perf_counter() - wall_before
    latencies.sort()

    def pick(q):
        return latencies[min(len(latencies) - 1, int(q * len(latencies)))] if latencies else float("nan")

    return {
        "concurrency": concurrency,
        "requests": len(latencies),
        "failures": len(failures),
        "throughput": len(latencies) / wall,
        "p50_ms": 1000 * pick(0.50),
        "p95_ms": 1000 * pick(0.95),
        "p99_ms": 1000 * pick(0.99),
        "mean_ms": 1000 * statistics.fmean(latencies) if latencies else None,
        "loadgen_cpu_share": (_cpu_seconds() - cpu_before) / (wall * (os.cpu_count() or 1)),
    }


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def wait_http(url: str, timeout: float) -> float:
    import requests

    start = time.monotonic()
    while time.monotonic() - start < timeout:
        try:
            if requests.get(url, timeout=2).status_code == 200:
                return time.monotonic() - start
        except requests.RequestException:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{url} never answered 200 within {timeout:.0f}s")


# ---- servers
def torchserve_venv() -> Path:
    """build/torchserve-venv with TorchServe's pins; torch/torchvision come from the project venv (.pth)."""
    python = TS_VENV / "bin" / "python"
    if not (TS_VENV / "bin" / "torchserve").exists():
        subprocess.run([sys.executable, "-m", "venv", str(TS_VENV)], check=True)
        site = subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        ours = [p for p in sys.path if p.endswith("site-packages") and Path(p).is_dir()][0]
        Path(site, "project-venv.pth").write_text(ours + "\n")
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", *TS_PINS], check=True)
    return TS_VENV / "bin"


class TorchServe:
    """TorchServe's defaults (workers = cores, batch size 1) with its stock image_classifier handler."""

    def __init__(self, model_dir: Path):
        if not shutil.which("java"):
            raise RuntimeError("TorchServe needs a JRE: apt-get install -y default-jre-headless")
        bin_dir = torchserve_venv()
        home = WORK / "torchserve"
        shutil.rmtree(home, ignore_errors=True)
        (home / "store").mkdir(parents=True)
        (home / "model.py").write_text(
            "from torchvision.models.resnet import Bottleneck, ResNet\n\n\n"
            "class Classifier(ResNet):\n"
            "    def __init__(self):\n"
            f"        super().__init__(Bottleneck, [3, 4, 6, 3], num_classes={NUM_CLASSES})\n"
        )
        classes = artifact.load_metadata(model_dir)["classes"]
        (home / "index_to_name.json").write_text(json.dumps({str(i): c for i, c in enumerate(classes)}))
        subprocess.run(
            [
                str(bin_dir / "torch-model-archiver"),
                "--model-name",
                "dogs",
                "--version",
                "1.0",
                "--model-file",
                str(home / "model.py"),
                "--serialized-file",
                str(model_dir / "model.pt"),
                "--handler",
                "image_classifier",
                "--extra-files",
                str(home / "index_to_name.json"),
                "--export-path",
                str(home / "store"),
            ],
            check=True,
        )
        (home / "config.properties").write_text(
            f"inference_address=http://127.0.0.1:{TS_PORT}\nmanagement_address=http://127.0.0.1:{TS_PORT + 1}\n"
            f"metrics_address=http://127.0.0.1:{TS_PORT + 2}\ndisable_token_authorization=true\n"
        )
        started = time.monotonic()
        self.log = open(home / "torchserve.log", "w")
        self.env, self.home = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}, home
        env = self.env
        self.process = subprocess.Popen(
            [
                str(bin_dir / "torchserve"),
                "--start",
                "--foreground",
                "--ncs",
                "--disable-token-auth",
                "--model-store",
                str(home / "store"),
                "--models",
                "dogs=dogs.mar",
                "--ts-config",
                str(home / "config.properties"),
            ],
            cwd=home,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        self.url = f"http://127.0.0.1:{TS_PORT}"
        wait_http(self.url + "/ping", 300)
        import requests  # /ping is up before the model's workers: wait until the model answers

        sample = make_images(1)[0]
        while time.monotonic() - started < 300:
            if requests.post(self.url + "/predictions/dogs", data=sample, timeout=60).status_code == 200:
                break
            time.sleep(0.5)
        self.cold_start_s = time.monotonic() - started
        self.path, self.headers = "/predictions/dogs", {"Content-Type": "image/jpeg"}

    def close(self) -> None:
        # The launcher's exit leaves the Java frontend and its Python workers running: ask them to stop.
        subprocess.run(
            [str(TS_VENV / "bin" / "torchserve"), "--stop"],
            env=self.env,
            cwd=self.home,
            capture_output=True,
            timeout=120,
        )
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self.log.close()


# ---- report
def table(rows: list[dict], alone: dict[str, float]) -> str:
    lines = [
        "| server | runtime | clients | req/s | vs torch fp32 server | % of runtime alone | p50 ms | p95 ms | "
        "p99 ms | load-gen CPU |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        base = next((b for b in rows if b["server"] == BASELINE and b["concurrency"] == r["concurrency"]), None)
        lines.append(
            f"| {r['server']} | {r['runtime']} | {r['concurrency']} | {r['throughput']:.1f} | "
            + (f"{r['throughput'] / base['throughput']:.2f}x" if base else "")
            + " | "
            f"{100 * r['throughput'] / alone[r['runtime']]:.0f}% | {r['p50_ms']:.0f} | {r['p95_ms']:.0f} | "
            f"{r['p99_ms']:.0f} | {100 * r['loadgen_cpu_share']:.0f}% |"
            + (f" ({r['failures']} failed)" if r["failures"] else "")
        )
    return "\n".join(lines)


def runtime_table(metadata: dict, alone: dict[str, float], single_ms: dict[str, float]) -> str:
    lines = [
        "| runtime | file MB | test accuracy | top-1 agreement with torch fp32 | alone, batch 8 img/s | "
        "alone, batch 1 ms |",
        "|---|---|---|---|---|---|",
    ]
    for name, scores in artifact.runtime_scores(metadata).items():
        size = (WORK / "model" / scores["file"]).stat().st_size / 1e6
        lines.append(
            f"| {name} | {size:.0f} | {scores['test_acc']:.3f} | {scores['agreement']:.3f} | "
            f"{alone[name]:.1f} | {single_ms[name]:.1f} |"
        )
    return "\n".join(lines)


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    for server in dict.fromkeys(r["server"] for r in rows):
        mine = [r for r in rows if r["server"] == server]
        left.plot([r["concurrency"] for r in mine], [r["throughput"] for r in mine], marker="o", label=server)
        right.plot([r["concurrency"] for r in mine], [r["p99_ms"] for r in mine], marker="o", label=server)
    left.set(xscale="log", xlabel="concurrent clients", ylabel="requests/s", title="Throughput")
    right.set(xscale="log", yscale="log", xlabel="concurrent clients", ylabel="ms", title="p99 latency")
    clients = sorted({r["concurrency"] for r in rows})
    for axis in (left, right):
        axis.set_xticks(clients, labels=[str(c) for c in clients])
        axis.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def image_size_mb(image: str) -> float:
    out = subprocess.run(
        ["docker", "image", "inspect", "--format", "{{.Size}}", image], capture_output=True, text=True, check=True
    ).stdout
    return int(out) / 1e6


def cold_starts(image: str, model_dir: Path, env: dict[str, str], repeats: int) -> list[float]:
    """`docker run` to the first 200 on /ping, `repeats` times (the image is already on the machine)."""
    times = []
    for _ in range(repeats):
        server = ServingContainer(image, model_dir, env, ping_deadline_s=120)
        times.append(server.cold_start_s)
        server.close()
    return times


def image_of(ref: str, image: str) -> str:
    """`image` with commit `ref`'s serving code and serving packages in place of this checkout's.

    Only what the serving code is made of changes (container_src/classifier and the packages of
    ref's docker/requirements/serve.txt, wheels built here); torch, Python and the OS stay the same,
    so the comparison measures the server, and needs no second 6 GB venv layer on disk."""
    tag = f"{image.rsplit(':', 1)[0]}:bench-{ref}"
    context = WORK / f"image-{ref}"
    shutil.rmtree(context, ignore_errors=True)
    context.mkdir(parents=True)
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", ref, "container_src/classifier", "docker/requirements/serve.txt"],
        capture_output=True,
        check=True,
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(context)], input=archive, check=True)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "--wheel-dir",
            str(context / "wheels"),
            "-r",
            str(context / "docker/requirements/serve.txt"),
        ],
        check=True,
    )
    (context / "Dockerfile").write_text(
        f"FROM {image}\nCOPY wheels/ /tmp/wheels/\n"
        "RUN pip install --quiet --no-index --no-deps /tmp/wheels/*.whl && rm -r /tmp/wheels\n"
        "COPY container_src/classifier/ /opt/program/classifier/\n"
    )
    subprocess.run(["docker", "build", "-q", "-t", tag, str(context)], check=True, capture_output=True)
    shutil.rmtree(context)
    return tag


def against(
    ref: str, image: str, model_dir: Path, images: list[bytes], concurrency: int, seconds: float, repeats: int
) -> dict:
    """This checkout's server and REF's, same model, loaded in turn `repeats` times each."""
    variants = {"this checkout": image, ref: image_of(ref, image)}
    servers = {name: ServingContainer(tag, model_dir, ping_deadline_s=120) for name, tag in variants.items()}
    runs: dict[str, list[dict]] = {name: [] for name in servers}
    try:
        for server in servers.values():
            load(server.url, server.path, server.headers, images, 2, 3)  # warm connections and caches
        for repeat in range(repeats):
            for name, server in servers.items():
                row = load(server.url, server.path, server.headers, images, concurrency, seconds)
                runs[name].append(row)
                print(
                    f"repeat {repeat + 1}/{repeats} {name}: {row['throughput']:.2f} req/s, p99 {row['p99_ms']:.0f} ms"
                    + (f", {row['failures']} failed" if row["failures"] else ""),
                    flush=True,
                )
    finally:
        for server in servers.values():
            server.close()
    medians = {
        name: {
            "throughput": statistics.median(r["throughput"] for r in rows),
            "p99_ms": statistics.median(r["p99_ms"] for r in rows),
            "failures": sum(r["failures"] for r in rows),
        }
        for name, rows in runs.items()
    }
    ratio = medians["this checkout"]["throughput"] / medians[ref]["throughput"]
    print("\n| server code | clients | median req/s | median p99 ms | runs |\n|---|---|---|---|---|")
    for name, m in medians.items():
        print(
            f"| {name} | {concurrency} | {m['throughput']:.2f} | {m['p99_ms']:.0f} | "
            + ", ".join(f"{r['throughput']:.2f}" for r in runs[name])
            + " |"
        )
    print(f"\nthis checkout / {ref}: {ratio:.3f}x throughput at {concurrency} clients")
    return {
        "against": ref,
        "concurrency": concurrency,
        "seconds_per_run": seconds,
        "runs": runs,
        "medians": medians,
        "throughput_ratio": ratio,
    }


def attack_memory(image: str, model_dir: Path, images: list[bytes]) -> dict:
    """The hardening attack against the ResNet50 container: statuses, worker restarts, memory."""
    from concurrent.futures import ThreadPoolExecutor

    import requests

    server = ServingContainer(image, model_dir, ping_deadline_s=120)
    try:
        load(server.url, server.path, server.headers, images, 16, 5)  # steady state: batches of 8 ran
        before, warm_peak = cgroup_memory(server.id)
        requests_ = image_cases.attack() + [
            ("good 500x400 JPEG", body, "image/jpeg", {200, 503}) for body in images[:16]
        ]
        start = time.monotonic()

        def send(item):
            name, body, kind, allowed = item
            answer = requests.post(server.url + "/invocations", data=body, headers={"Content-Type": kind}, timeout=120)
            return name, answer.status_code, answer.status_code in allowed

        with ThreadPoolExecutor(len(requests_)) as pool:
            answers = list(pool.map(send, requests_))
        took = time.monotonic() - start
        ping = requests.get(server.url + "/ping", timeout=2).status_code
        _, peak = cgroup_memory(server.id)
        logs = subprocess.run(["docker", "logs", server.id], capture_output=True, text=True)
        restarts = (logs.stdout + logs.stderr).count("Booting worker") - 1
    finally:
        server.close()
    statuses: dict[str, dict] = {}
    for name, status, _ in answers:
        statuses.setdefault(name, {}).setdefault(str(status), 0)
        statuses[name][str(status)] += 1
    result = {
        "memory_before_mib": before / 2**20,
        "memory_peak_before_attack_mib": warm_peak / 2**20,
        "memory_peak_mib": peak / 2**20,
        "attack_seconds": took,
        "worker_restarts": restarts,
        "ping_after": ping,
        "statuses": statuses,
        "unexpected": [a for a in answers if not a[2]],
    }
    print(json.dumps(result, indent=2))
    return result


# ---- --cold-start
# What deploy.py --serverless gives the container (its default memory, 3072 MB; the environment of
# classifier_host's serverless deployment), reproduced with local Docker.
SERVERLESS_MEMORY = "3g"
SERVERLESS_ENV = {"SERVING_MAX_PAYLOAD_MB": "4", "SAGEMAKER_MODEL_SERVER_WORKERS": "1"}
COLD_ENVIRONMENTS: dict[str, tuple[dict[str, str], tuple[str, ...]]] = {
    "default": ({}, ()),
    "serverless": (SERVERLESS_ENV, ("--memory", SERVERLESS_MEMORY, "--memory-swap", SERVERLESS_MEMORY)),  # no swap
}


def cold_start_once(
    image: str, model_dir: Path, env: dict[str, str], docker_args: tuple[str, ...], body: bytes
) -> dict:
    """One container: seconds from `docker run` to the first 200 on /ping and to the first answered
    POST /invocations (`body`, sent as soon as /ping answered), then its cgroup's memory peak. The
    container is named, so that it is removed whatever failed, even an interrupted `docker run`."""
    name = f"bench-cold-start-{os.getpid()}-{time.monotonic_ns()}"
    try:
        server = ServingContainer(
            image, model_dir, env, ping_deadline_s=180, docker_args=(*docker_args, "--name", name)
        )
        status, answer = urllib_post(server.url, body, "image/jpeg")
        first_answer = time.monotonic() - server.started
        if status != 200:
            raise RuntimeError(f"the first POST /invocations answered {status}: {answer}\n{server.logs()[-3000:]}")
        try:
            peak_mib = cgroup_memory(server.id)[1] / 2**20
        except (subprocess.CalledProcessError, ValueError, IndexError):
            peak_mib = None
        return {
            "runtime": server.runtime,
            "ping_ready_s": server.cold_start_s,
            "first_answer_s": first_answer,
            "peak_mib": peak_mib,
        }
    except Exception:
        oom = subprocess.run(
            ["docker", "inspect", "--format", "{{.State.OOMKilled}}", name], capture_output=True, text=True
        ).stdout.strip()
        if oom == "true":
            raise RuntimeError(f"{image} was killed for memory (docker {' '.join(docker_args)})") from None
        raise
    finally:
        subprocess.run(["docker", "rm", "-f", name], capture_output=True)


def spread(values: list[float]) -> dict:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)} if values else {}


def cold_start_benchmark(images: dict[str, str], model_dir: Path, body: bytes, repeats: int) -> dict:
    """Each image in each of COLD_ENVIRONMENTS, `repeats` times, interleaved (image by image, the two
    environments in alternating order). Each image first starts once unmeasured, so that every measured
    start finds its files in the page cache (as every start but a machine's first does)."""
    result = {
        "cores": os.cpu_count(),
        "load_average_start": os.getloadavg(),
        "repeats": repeats,
        "images": images,
        "environments": {
            name: {"env": env, "docker_args": list(args)} for name, (env, args) in COLD_ENVIRONMENTS.items()
        },
        "runs": [],
    }
    for label, ref in images.items():
        warm = cold_start_once(ref, model_dir, {}, (), body)
        print(
            f"{label}: warm-up start (not counted) ready {warm['ping_ready_s']:.2f}s,"
            f" answered {warm['first_answer_s']:.2f}s",
            flush=True,
        )
    for repeat in range(repeats):
        order = list(COLD_ENVIRONMENTS) if repeat % 2 == 0 else list(reversed(COLD_ENVIRONMENTS))
        for label, ref in images.items():
            for environment in order:
                env, docker_args = COLD_ENVIRONMENTS[environment]
                run = {"image": label, "environment": environment, "repeat": repeat + 1}
                try:
                    run.update(cold_start_once(ref, model_dir, env, docker_args, body))
                    said = f"ready {run['ping_ready_s']:.2f}s, answered {run['first_answer_s']:.2f}s ({run['runtime']})"
                except Exception as err:  # recorded and shown in the table; the other runs go on
                    run["error"] = str(err)[-3000:]
                    said = f"FAILED: {run['error'][:500]}"
                result["runs"].append(run)
                print(f"repeat {repeat + 1}/{repeats} {label}, {environment}: {said}", flush=True)
    result["load_average_end"] = os.getloadavg()
    result["summary"] = []
    for label in images:
        for environment in COLD_ENVIRONMENTS:
            runs = [r for r in result["runs"] if r["image"] == label and r["environment"] == environment]
            ok = [r for r in runs if "error" not in r]
            peaks = [r["peak_mib"] for r in ok if r["peak_mib"] is not None]
            result["summary"].append(
                {
                    "image": label,
                    "environment": environment,
                    "runtime": ok[0]["runtime"] if ok else None,
                    "runs": len(ok),
                    "failed": len(runs) - len(ok),
                    "ping_ready_s": spread([r["ping_ready_s"] for r in ok]),
                    "first_answer_s": spread([r["first_answer_s"] for r in ok]),
                    "peak_mib": spread(peaks),
                }
            )
    result["ratio_serverless_to_default"] = {}
    for label in images:
        rows = {row["environment"]: row for row in result["summary"] if row["image"] == label}
        result["ratio_serverless_to_default"][label] = {
            measure: rows["serverless"][measure]["median"] / rows["default"][measure]["median"]
            if rows["serverless"][measure] and rows["default"][measure]
            else None
            for measure in ("ping_ready_s", "first_answer_s")
        }
    return result


def cold_start_table(result: dict) -> str:
    def cell(values: dict) -> str:
        return f"{values['median']:.2f} ({values['min']:.2f}-{values['max']:.2f})" if values else "-"

    def ratio(value: float | None) -> str:
        return f"{value:.2f}x" if value is not None else "-"

    lines = [
        "| image (runtime) | environment | runs | ping-ready s, median (min-max) | first answer s, median (min-max) "
        "| memory peak MiB | serverless / default: ping-ready | serverless / default: first answer |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in result["summary"]:
        ratios = result["ratio_serverless_to_default"][row["image"]]
        serverless = row["environment"] == "serverless"
        lines.append(
            f"| {row['image']} ({row['runtime'] or '?'}) | {row['environment']} | {row['runs']}"
            + (f" ({row['failed']} failed)" if row["failed"] else "")
            + f" | {cell(row['ping_ready_s'])} | {cell(row['first_answer_s'])} | "
            + (f"{row['peak_mib']['median']:.0f}" if row["peak_mib"] else "-")
            + " | "
            + (f"{ratio(ratios['ping_ready_s'])} | {ratio(ratios['first_answer_s'])} |" if serverless else "- | - |")
        )
    lines.append(
        f"\nserverless: {', '.join(f'{k}={v}' for k, v in SERVERLESS_ENV.items())}, docker "
        f"{' '.join(COLD_ENVIRONMENTS['serverless'][1])}; default: the image's own settings, no memory limit. "
        f"Medians of {result['repeats']} starts each, interleaved, after one unmeasured start of each image "
        "(page cache warm)."
    )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--image", default=os.environ.get("SERVE_IMAGE"), help="serving image (default: make print-images)"
    )
    parser.add_argument(
        "--cpu-image", default=os.environ.get("SERVE_CPU_IMAGE"), help="slim serving image (default: make print-images)"
    )
    parser.add_argument("--seconds", type=float, default=20, help="load duration per row")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--no-torchserve", action="store_true", help="skip the TorchServe baseline")
    parser.add_argument("--against", metavar="REF", help="compare this checkout's server with commit REF's")
    parser.add_argument(
        "--repeats",
        type=int,
        help="runs of each server, interleaved: --against (default 3), --cold-start (default 5)",
    )
    parser.add_argument("--attack", action="store_true", help="memory peak under the hardening attack")
    parser.add_argument("--explain", action="store_true", help="what explanations cost, and what they do not")
    parser.add_argument(
        "--cold-start", action="store_true", help="docker run -> /ping 200 and first answer, default vs serverless"
    )
    args = parser.parse_args()
    made = subprocess.run(
        ["make", "-s", "-C", str(ROOT), "print-images"], capture_output=True, text=True, check=True
    ).stdout.split()
    image, cpu_image = args.image or made[1], args.cpu_image or made[2]
    WORK.mkdir(parents=True, exist_ok=True)
    model_dir = WORK / "model"
    make_model(model_dir)
    model_dir.chmod(0o755)
    images = make_images(32)
    print(
        f"{len(images)} JPEGs 500x400, {statistics.fmean(map(len, images)) / 1024:.0f} KB average; "
        f"{MODEL} {NUM_CLASSES} classes at {IMAGE_SIZE}; {os.cpu_count()} cores, load average {os.getloadavg()}",
        flush=True,
    )

    if args.against:
        repeats = args.repeats or 3
        result = against(args.against, image, model_dir, images, args.concurrency[-1], args.seconds, repeats)
        (WORK / f"against-{args.against}.json").write_text(json.dumps(result, indent=2) + "\n")
        return 0
    if args.cold_start:
        result = cold_start_benchmark({"serve": image, "serve-cpu": cpu_image}, model_dir, images[0], args.repeats or 5)
        (WORK / "cold_start.json").write_text(json.dumps(result, indent=2) + "\n")
        print(f"\n{result['cores']} cores, load average (1/5/15 min) at the start {result['load_average_start']}")
        print(cold_start_table(result))
        print(f"\nwrote {WORK / 'cold_start.json'}")
        return 0
    if args.attack:
        (WORK / "attack.json").write_text(json.dumps(attack_memory(image, model_dir, images), indent=2) + "\n")
        return 0
    if args.explain:
        result = explanation_costs(model_dir, image, cpu_image, images, args.seconds)
        (WORK / "explain.json").write_text(json.dumps(result, indent=2) + "\n")
        print(explanation_tables(result))
        return 0

    metadata = artifact.load_metadata(model_dir)
    alone = {name: runtime_alone(model_dir, name, images, 8, args.seconds) for name in runtimes.NAMES}
    single_ms = {name: 1000 / runtime_alone(model_dir, name, images, 1, args.seconds / 2) for name in runtimes.NAMES}
    print(runtime_table(metadata, alone, single_ms), flush=True)
    sizes = {name: image_size_mb(ref) for name, ref in (("serve", image), ("serve-cpu", cpu_image))}
    cold = {
        "serve (torch)": cold_starts(image, model_dir, {"SERVING_RUNTIME": "torch"}, 3),
        "serve-cpu (auto)": cold_starts(cpu_image, model_dir, {}, 3),
    }
    print(f"image sizes MB: {sizes}; cold starts s: {cold}", flush=True)
    servers = [
        (BASELINE, image, {"SERVING_RUNTIME": "torch"}),
        ("serve", image, {"SERVING_RUNTIME": "onnx"}),
        ("serve", image, {"SERVING_RUNTIME": "onnx-int8"}),
        ("serve-cpu (auto)", cpu_image, {}),
    ]
    starters = [
        (name, lambda ref=ref, env=env: ServingContainer(ref, model_dir, env, ping_deadline_s=120))
        for name, ref, env in servers
    ]
    if not args.no_torchserve:
        starters.append(("TorchServe 0.12 (defaults)", lambda: TorchServe(model_dir)))
    rows = []
    for name, start in starters:
        server = start()
        runtime = getattr(server, "runtime", runtimes.TORCH)
        print(f"{name} ({runtime}): ready {server.cold_start_s:.1f}s after start", flush=True)
        try:
            load(server.url, server.path, server.headers, images, 2, 3)  # warm the connections and caches
            for concurrency in args.concurrency:
                row = {
                    "server": name,
                    "runtime": runtime,
                    **load(server.url, server.path, server.headers, images, concurrency, args.seconds),
                }
                rows.append(row)
                print(table([row], alone).splitlines()[-1], flush=True)
        finally:
            server.close()
    results = {
        "load_average_1_5_15": os.getloadavg(),
        "cores": os.cpu_count(),
        "seconds_per_row": args.seconds,
        "runtimes": {
            name: {
                **artifact.runtime_scores(metadata)[name],
                "alone_batch8_images_per_s": alone[name],
                "alone_batch1_ms": single_ms[name],
            }
            for name in runtimes.NAMES
        },
        "image_size_mb": sizes,
        "cold_start_s": cold,
        "rows": rows,
    }
    (WORK / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    plot(rows, WORK / "serving.png")
    print(
        f"\nload average at the end (1/5/15 min): {os.getloadavg()}; the load generator and every other "
        "process on the machine share its cores with the server"
    )
    print(runtime_table(metadata, alone, single_ms))
    print("\n| image | size MB | cold start s (docker run -> /ping 200), median of 3 |\n|---|---|---|")
    for (name, size), times in zip(sizes.items(), cold.values(), strict=True):
        print(f"| {name} | {size:.0f} | {statistics.median(times):.2f} ({', '.join(f'{t:.2f}' for t in times)}) |")
    print()
    print(table(rows, alone))
    print(f"\nwrote {WORK / 'results.json'} and {WORK / 'serving.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
