"""The screens of the organisers' console, one module per feature. Importing this package
registers every route on ``contest.ui.router.CONSOLE``."""

from contest.ui.console import (
    broadcasts,  # noqa: F401
    config,  # noqa: F401
    exports,  # noqa: F401
    feedback,  # noqa: F401
    fixes,  # noqa: F401
    locks,  # noqa: F401
    predictions,  # noqa: F401
    prizes,  # noqa: F401
    round2,  # noqa: F401
    staff,  # noqa: F401
    stats,  # noqa: F401
    uploads,  # noqa: F401
)
