"""The job report built from the shared local-mode training job (tensors, profile, metadata all real)."""

from __future__ import annotations

import json
import tarfile

import pytest

from classifier.debugging import rules
from classifier_host.reports.training import build_report

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # smdebug 1.0.34's old API calls


@pytest.fixture(scope="module")
def built(trained_model, tmp_path_factory):
    model_tar, log = trained_model
    out = tmp_path_factory.mktemp("report") / "report.html"
    # The launcher's --output-dir: the report follows last_training_job.txt to the job's archives.
    return build_report(model_tar.parent, out), log, model_tar.parent


def test_job_output_holds_tensors_and_profile(built):
    _, log, output_dir = built
    job = output_dir / (output_dir / "last_training_job.txt").read_text().strip()
    with tarfile.open(job / "output.tar.gz") as tar:
        names = tar.getnames()
    assert any(n.startswith(("tensors/events/", "./tensors/events/")) for n in names), names[:20]
    for wanted in ("system.jsonl", "trace.json", "operators.json", "epochs.jsonl"):
        assert any(n.endswith(f"data/profile/{wanted}") for n in names), wanted
    assert "debugger: own settings" in log


def test_report_holds_every_section(built):
    path, _, _ = built
    page = path.read_text()
    for heading in (
        "Test-split evaluation",
        "Recommendations",
        "Loss and accuracy",
        "Debugger rules",
        "System utilisation",
        "Where step time goes: data loading vs compute",
        "Top operators (torch.profiler window)",
    ):
        assert f"<h2>{heading}</h2>" in page, heading
    # Charts are inline (self-contained): epoch loss, epoch accuracy, step loss, utilisation, split, operators.
    assert page.count("data:image/png;base64,") == 6
    assert 'src="http' not in page and "<script" not in page
    for missing in ("No utilisation samples", "No per-epoch timing", "No profiler window", "No tensors"):
        assert missing not in page
    assert "aten::" in page  # real operators from the torch.profiler window
    # The test split's evaluation, from the artifact's evaluation.json, on a page of its own beside the report.
    evaluation = (path.parent / "evaluation.html").read_text()
    assert "href='evaluation.html'" in page and "the runtime a CPU endpoint serves" in page
    assert "<h2>Confusion matrix</h2>" in evaluation
    # The heatmap and the reliability diagram, then per mistake its crop (JPEG) and its Grad-CAM overlay (PNG):
    # the training job's page needs no data set to show them.
    cams = evaluation.count("alt='Grad-CAM of ")
    mistakes = evaluation.count("<div class=card>")
    assert cams == mistakes and evaluation.count("data:image/png;base64,") == 2 + cams
    assert evaluation.count("data:image/jpeg;base64,") == cams


def test_every_rule_was_evaluated(built):
    path, _, _ = built
    results = json.loads((path.parent / "rules.json").read_text())
    assert [r["rule"] for r in results] == [r.name for r in rules.RULES]
    for result in results:
        assert result["status"] in (rules.ISSUES, rules.NO_ISSUES), result
        assert result["reason"]
