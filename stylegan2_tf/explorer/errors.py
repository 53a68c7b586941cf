"""The explorer's one error class: bad requests become HTTP 400 with {"error": message}."""

from ..errors import UserError


class ExplorerError(UserError):
    """A request the explorer refuses (bad value, unknown network, no projection weights, ...)."""
