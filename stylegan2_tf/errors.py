"""The one exception class for what a user did wrong.

Everything a user can get wrong (a missing or malformed file, an unknown option value, a
dataset that does not fit the network) raises a subclass of `UserError` with a one-line
message that names the file or option and the problem. The command-line tools catch
`UserError` once (`cli.run`) and print `error: <message>`; anything else is a bug and keeps
its traceback. The subclasses say which part of the library refused (`TrainingError`,
`DatasetError`, ...), so library users can catch narrowly.
"""


class UserError(ValueError):
    """Bad input from the user, reported as one `error:` line by the command-line tools."""
