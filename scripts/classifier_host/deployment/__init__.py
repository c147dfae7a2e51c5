"""What deploy.py and teardown.py do to cloud endpoints, one module per kind of change:

    models.py        which model, image and registry version a deployment serves (shared by all of them)
    cloud.py         a new endpoint (real-time, asynchronous or serverless), its autoscaling and record
    rollouts.py      an in-place update of a live endpoint with traffic shifting and automatic rollback
    shadow_tests.py  a candidate beside production as a shadow variant, its report, promotion and stop
    deletion.py      an endpoint and everything that belongs to it

The CLI modules parse arguments, call one function here and map its errors to an exit status.

Errors: settings.SettingsError (a setting, record or option that cannot be used; nothing was created),
DeploymentError (what was started failed; the message says what is left and how to remove it),
DeletionError."""


class DeletionError(Exception):
    """Deleting an endpoint stopped or found nothing; the message says what to do."""


class DeploymentError(Exception):
    """The endpoint, its update or its autoscaling did not come up; the message says what is left."""
