"""The one exception type raised for bad training input."""

from ..errors import UserError


class TrainingError(UserError):
    """Bad training input, caught before training starts (or a fatal training condition)."""
