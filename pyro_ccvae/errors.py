"""The library's family of user errors: bad input (an option, a file, a run directory) rather
than a fault of the code. The command line prints such an error as its one-line message; any
other exception keeps its traceback.
"""


class UserError(ValueError):
    """Bad input; the message is one line saying what is wrong and how to fix it. A
    :class:`ValueError`, so that callers catching that still catch it."""
