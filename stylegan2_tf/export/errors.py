"""The export's one error class."""

from ..errors import UserError


class ExportError(UserError):
    """An export that cannot be written: unknown format or part, a missing optional package, an op
    the target runtime lacks, an output folder in the way, an export that disagrees with Keras."""
