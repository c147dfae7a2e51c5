"""Tracking that never fails or slows a job: each call queues an event; one thread sends the queue to MLflow in
order. When the store does not answer, the launcher warns once and the thread retries; what is still unsent
when the job ends is written to a file that `classifier-track --replay FILE` sends later. Nothing is lost.

Events are plain JSON (the file's format too). A run is named by a key the journal makes, so runs can be
created, logged to and ended while the store is down; the file keeps the MLflow ids of the runs the store
already has, so a replay goes on with the same runs. Delivery is at least once: an event the store took but
whose answer was lost is sent again (a metric point twice at the same step)."""

from __future__ import annotations

import collections
import json
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from . import store

FORMAT = "classifier-tracking-journal/1"


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


class Sender:
    """Applies events to an MLflow store, in order; `runs` maps the journal's run keys to MLflow run ids."""

    def __init__(self, uri: str, runs: dict[str, str] | None = None, experiment: str = store.EXPERIMENT):
        self.uri, self.runs, self.experiment = uri, dict(runs or {}), experiment
        self._client = None
        self._experiments: dict[str, str] = {}

    def apply(self, event: dict) -> None:
        if self._client is None:
            self._client = store.client(self.uri)
        op, client = event["op"], self._client
        if op == "start":
            if event["key"] in self.runs:  # created before the answer got lost, or by an earlier replay
                return
            name = event.get("experiment") or self.experiment
            if name not in self._experiments:
                self._experiments[name] = store.experiment_id(client, name, self.uri)
            tags = dict(event.get("tags", {}))
            if event.get("parent"):
                tags["mlflow.parentRunId"] = self.runs[event["parent"]]
            run = client.create_run(
                self._experiments[name], start_time=event["time"], tags=tags, run_name=event.get("name")
            )
            self.runs[event["key"]] = run.info.run_id
            return
        run_id = self.runs[event["key"]]
        if op == "params":
            from mlflow.entities import Param

            client.log_batch(run_id, params=[Param(k, str(v)[:6000]) for k, v in event["params"].items()])
        elif op == "metric":
            client.log_metric(run_id, event["name"], event["value"], timestamp=event["time"], step=event["step"])
        elif op == "tags":
            from mlflow.entities import RunTag

            client.log_batch(run_id, tags=[RunTag(k, str(v)) for k, v in event["tags"].items()])
        elif op == "artifact":
            if Path(event["path"]).exists():  # a replay long after: a removed file is all that can be lost
                client.log_artifact(run_id, event["path"], event.get("artifact_path"))
        elif op == "end":
            client.set_terminated(run_id, event["status"], end_time=event["time"])
        else:
            raise ValueError(f"unknown tracking event {op!r}")


class Journal:
    """The launchers' tracking: `start_run` and the `log_*` calls return at once; `close` ends it."""

    def __init__(
        self,
        uri: str | None = None,
        unsent_dir: Path | None = None,
        warn: Callable[[str], None] = _stderr,
        retry_seconds: float = 5.0,
        drain_seconds: float = 15.0,
    ):
        self.uri = uri or store.tracking_uri()
        self.unsent_dir = unsent_dir or store.UNSENT_DIR
        self.warn, self.retry_seconds, self.drain_seconds = warn, retry_seconds, drain_seconds
        self.sender = Sender(self.uri)
        self.unsent_file: Path | None = None
        self.failures = 0
        self._pending: collections.deque[dict] = collections.deque()
        self._cond = threading.Condition()
        self._closing = False
        self._thread = threading.Thread(target=self._send_loop, name="mlflow-journal", daemon=True)
        self._thread.start()

    # ---- what the launchers call ----

    def start_run(self, name: str, tags: dict | None = None, parent: str | None = None) -> str:
        key = uuid.uuid4().hex
        self._put({"op": "start", "key": key, "name": name, "tags": dict(tags or {}), "parent": parent})
        return key

    def log_params(self, key: str, params: dict) -> None:
        if params:
            self._put({"op": "params", "key": key, "params": {k: str(v) for k, v in params.items()}})

    def log_metric(self, key: str, name: str, value: float, step: int = 0) -> None:
        self._put({"op": "metric", "key": key, "name": name, "value": float(value), "step": int(step)})

    def set_tags(self, key: str, tags: dict) -> None:
        if tags:
            self._put({"op": "tags", "key": key, "tags": {k: str(v) for k, v in tags.items()}})

    def log_artifact(self, key: str, path: Path, artifact_path: str | None = None) -> None:
        self._put({"op": "artifact", "key": key, "path": str(Path(path).resolve()), "artifact_path": artifact_path})

    def end_run(self, key: str, status: str = "FINISHED") -> None:
        self._put({"op": "end", "key": key, "status": status})

    def run_id(self, key: str) -> str | None:
        """The MLflow id of a run the store has already created (None while it is unsent)."""
        return self.sender.runs.get(key)

    def close(self) -> Path | None:
        """Send what is queued (for at most drain_seconds); the file holding what could not be sent, or None."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        self._thread.join(self.drain_seconds)
        with self._cond:
            left = list(self._pending)
            self._pending.clear()
        if not left:
            return None
        self.unsent_dir.mkdir(parents=True, exist_ok=True)
        path = self.unsent_dir / f"{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:8]}.jsonl"
        write_file(path, self.uri, self.sender.runs, left)
        self.unsent_file = path
        self.warn(
            f"warning: {len(left)} tracking event(s) not sent to {self.uri}, saved in {path}; "
            f"send them later with: classifier-track --replay {path}"
        )
        return path

    # ---- the sending thread ----

    def _put(self, event: dict) -> None:
        event.setdefault("time", int(time.time() * 1000))
        with self._cond:
            self._pending.append(event)
            self._cond.notify_all()

    def _send_loop(self) -> None:
        while True:
            with self._cond:
                while not self._pending and not self._closing:
                    self._cond.wait()
                if not self._pending:
                    return
                event = self._pending[0]
            try:
                self.sender.apply(event)
            except Exception as err:  # the store's errors are many kinds (HTTP, SQL, auth): all mean "later"
                self.failures += 1
                if self.failures == 1:
                    self.warn(
                        f"warning: MLflow tracking at {self.uri} failed ({type(err).__name__}: "
                        f"{str(err).splitlines()[0][:200] if str(err) else ''}); the job goes on, tracking is "
                        "kept and sent when the store answers (or saved to a file to replay)"
                    )
                with self._cond:
                    if self._closing:
                        return  # close() saves what is left
                    self._cond.wait(self.retry_seconds)
                continue
            with self._cond:
                if self._pending and self._pending[0] is event:
                    self._pending.popleft()


def write_file(path: Path, uri: str, runs: dict[str, str], events: list[dict]) -> None:
    lines = [json.dumps({"format": FORMAT, "uri": uri, "runs": runs})]
    lines += [json.dumps(event) for event in events]
    tmp = path.with_suffix(".tmp")
    tmp.write_text("\n".join(lines) + "\n")
    tmp.replace(path)


def read_file(path: Path) -> tuple[str, dict[str, str], list[dict]]:
    """(the store's URI, run keys -> MLflow ids, the events); ValueError when it is not a journal file."""
    try:
        lines = [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{path} is not a tracking journal file: {err}") from None
    if not lines or not isinstance(lines[0], dict) or lines[0].get("format") != FORMAT:
        raise ValueError(f"{path} is not a tracking journal file (no '{FORMAT}' header line)")
    return lines[0]["uri"], dict(lines[0].get("runs", {})), lines[1:]


def replay(path: Path, uri: str | None = None) -> int:
    """Send a saved journal's events (to `uri`, default the store it was meant for); the number sent. On a
    failure, the file is rewritten with what is still unsent (and the runs now created) before raising."""
    saved_uri, runs, events = read_file(path)
    sender = Sender(uri or saved_uri, runs)
    for index, event in enumerate(events):
        try:
            sender.apply(event)
        except Exception:
            write_file(Path(path), saved_uri, sender.runs, events[index:])
            raise
    Path(path).unlink()
    return len(events)
