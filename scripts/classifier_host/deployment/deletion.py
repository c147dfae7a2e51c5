"""Delete a cloud endpoint and everything that belongs to it: the models and endpoint configs of every
deployment and update, its scaling, its alarms and its shadow tests."""

from __future__ import annotations

from collections.abc import Callable

from .. import records, settings
from ..settings import SettingsError
from . import DeletionError


def delete_endpoint(name: str | None, say: Callable[[str], object] = print) -> None:
    """Delete the endpoint NAME (default: the recorded one) and what belongs to it, saying each thing deleted.
    The record is forgotten only once nothing of it is left, so a deletion stopped half-way is finished
    by the next one. SettingsError: nothing to delete was named; DeletionError: the deletion stopped, or
    there was no such endpoint."""
    cfg = settings.load()
    name = name or records.recorded("endpoint")
    if not name:
        raise SettingsError("no endpoint recorded in build/cloud/endpoint.txt: give its name, --delete NAME")
    # botocore and the session import in over a second: only once the settings are known good.
    from botocore.exceptions import BotoCoreError, ClientError

    from ..sagemaker import endpoints, session

    boto = session.boto_session(cfg.region)
    try:
        done = endpoints.delete(boto, name, boto.client("application-autoscaling"), boto.client("cloudwatch"))
    except (ClientError, BotoCoreError, RuntimeError) as err:  # RuntimeError: a shadow test that does not stop
        raise DeletionError(
            f"deleting endpoint {name} stopped: {err}; what is left stays recorded, run the same command again"
        ) from err
    for what in done.deleted:
        say(f"deleted {what}")
    if records.recorded("endpoint") == name:
        records.forget("endpoint")
    records.forget_serving(name)
    if not done.found:
        raise DeletionError(f"there is no endpoint {name} (nor its config or model) in {cfg.region}")
