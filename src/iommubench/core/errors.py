"""Exit codes, and the error any layer raises for bad input that is not a config error (the
CLI turns it into one line on standard error and exit 2)."""

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_INTERRUPTED = 0, 1, 2, 130
EXIT_INTERNAL = 70  # EX_SOFTWARE: a bug, distinct from a failed point or a regression (1)


class UsageError(Exception):
    """Bad input that is not a config error: one line, exit 2."""
