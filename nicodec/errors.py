"""User-facing errors: one clear line, no traceback, exit status 2 from the CLI."""


class NicodecError(Exception):
    """Something the user can fix (bad input, missing weights, corrupt file)."""


class CorruptFileError(NicodecError):
    """A `.nic` file is truncated, damaged or not a `.nic` file at all."""
