"""The one exception type the CLI turns into a one-line message and exit code 2."""


class LMError(Exception):
    """A problem the user can fix: bad input, a wrong reference, a missing file.

    The message names the problem and the fix in one line; the CLI prints it without a
    traceback (``--debug`` shows one).
    """
