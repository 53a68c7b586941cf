"""The one exception type raised for bad dataset input."""

from ..errors import UserError


class DatasetError(UserError):
    """A dataset input (image, archive, TFRecord file, labels file) is unusable.

    The message always names the offending file (and, for TFRecord files, the
    index of the record) together with the problem, so that it can be shown to
    the user as is.
    """

    def __init__(self, path, problem):
        self.path = str(path) if path is not None else None
        self.problem = problem
        super().__init__(f"{self.path}: {problem}" if self.path else problem)
