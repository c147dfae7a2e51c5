"""How tests and benchmarks probe a running server: requests sent as most clients send them, and the
memory its container used."""
from __future__ import annotations

import json
import subprocess
import urllib.error
import urllib.request


def urllib_post(url: str, body: bytes, content_type: str, attributes: str = "") -> tuple[int, dict]:
    """POST /invocations with urllib, which sends the whole body before it reads a byte of the answer
    (as urllib3 and botocore do): (status, JSON answer)."""
    headers = {"Content-Type": content_type, **({"X-Amzn-SageMaker-Custom-Attributes": attributes} if attributes else {})}
    request = urllib.request.Request(url + "/invocations", data=body, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=120) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def cgroup_memory(container_id: str) -> tuple[int, int]:
    """(current, peak) bytes of the container's cgroup: v2 memory.current/peak, v1 usage/max_usage."""
    script = ("cat /sys/fs/cgroup/memory.current /sys/fs/cgroup/memory.peak 2>/dev/null || "
              "cat /sys/fs/cgroup/memory/memory.usage_in_bytes /sys/fs/cgroup/memory/memory.max_usage_in_bytes")
    out = subprocess.run(["docker", "exec", container_id, "sh", "-c", script], capture_output=True, text=True,
                         check=True).stdout.split()
    return int(out[0]), int(out[1])
