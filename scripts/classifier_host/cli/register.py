"""Register a trained model with its evaluation, and promote it to champion only if it is not worse.

    python scripts/register.py --model-data build/output/model.tar.gz --evaluate-on build/sample-data/test
        [--max-drop POINTS] [--min-accuracy FRACTION]               (local: MLflow's registry)
    python scripts/register.py --cloud --training-job NAME|--model-data s3://... --evaluate-on DIR
                                                                     (SageMaker Model Registry)
    python scripts/register.py [--cloud] --approve VERSION|--reject VERSION --reason TEXT

The model is evaluated on --evaluate-on (a folder per class) through the runtime `auto` serves, as
scripts/evaluate.py does; it becomes the champion only if its top-1 accuracy is not below the champion's on the
same folder by more than --max-drop points (the champion is evaluated there again when its recorded evaluation
used another folder) and a runtime passes the serving gate; the first model needs --min-accuracy. Prints one
JSON line: {"version", "champion", "reason"}. deploy.py --model champion serves the champion.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from . import errors


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--model-data", help="model.tar.gz: a local path or s3://")
    source.add_argument("--training-job", metavar="NAME", help="the model of this SageMaker training job (--cloud)")
    parser.add_argument("--evaluate-on", type=Path, metavar="DIR", help="labelled folder (one subfolder per class)")
    parser.add_argument(
        "--max-drop", type=float, default=0.0, help="top-1 points the champion may lose (default 0: not worse)"
    )
    parser.add_argument("--min-accuracy", type=float, default=0.0, help="the first model's top-1 floor (default 0)")
    parser.add_argument("--cloud", action="store_true", help="SageMaker Model Registry (default: MLflow's)")
    parser.add_argument(
        "--registry-name", default="image-classifier", help="registered model / model package group name"
    )
    decision = parser.add_mutually_exclusive_group()
    decision.add_argument("--approve", metavar="VERSION", help="make VERSION the champion (a person's decision)")
    decision.add_argument("--reject", metavar="VERSION", help="mark VERSION rejected")
    parser.add_argument("--reason", default="", help="why (recorded with --approve / --reject)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from ..registry.gate import RegistryError, Rule
    from ..settings import SettingsError

    if args.approve or args.reject:
        if not args.reason:
            return errors.fail("--approve and --reject need --reason TEXT (it is recorded with who and when)", 2)
        action = decide
    else:
        if not args.evaluate_on:
            return errors.fail("--evaluate-on DIR is required to register a model", 2)
        if not (args.model_data or args.training_job):
            return errors.fail("give --model-data PATH|s3://... or --training-job NAME", 2)
        if args.training_job and not args.cloud:
            return errors.fail("--training-job names a SageMaker job: add --cloud (or give --model-data)", 2)
        try:
            Rule(args.max_drop, args.min_accuracy)
        except RegistryError as err:
            return errors.fail(err, 2)
        action = register
    return errors.run(lambda: print(action(args).line()), {SettingsError: 2, RegistryError: 2})


def decide(args):
    registry = open_registry(args)
    return registry.approve(args.approve, args.reason) if args.approve else registry.reject(args.reject, args.reason)


def register(args):
    from ..registry import flow
    from ..registry.gate import Rule

    rule = Rule(args.max_drop, args.min_accuracy)
    with tempfile.TemporaryDirectory(prefix="register-") as scratch:
        if args.cloud:
            return flow.register_cloud(
                open_registry(args), args.model_data, args.training_job, args.evaluate_on, rule, Path(scratch)
            )
        return flow.register_local(open_registry(args), args.model_data, args.evaluate_on, rule, Path(scratch))


def open_registry(args):
    if args.cloud:
        from ..registry import flow

        return flow.cloud_registry(args.registry_name)
    from ..registry.mlflow_registry import MlflowRegistry

    return MlflowRegistry(name=args.registry_name)


if __name__ == "__main__":  # python -m classifier_host.cli.register
    sys.exit(main())
