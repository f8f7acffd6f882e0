"""Domain exceptions of efnas.

Every message names the file or key at fault, what was expected, what was
found, and (where there is one) the fix.  The CLI turns these into one line on
stderr and the exit code given by ``exit_code``: 2 for usage/config mistakes,
1 for runtime failures.
"""

from __future__ import annotations


class EfnasError(Exception):
    """Base of all efnas errors; ``exit_code`` is what the CLI exits with."""

    exit_code = 1


class ConfigError(EfnasError):
    """A config file, CLI option or other user input is invalid."""

    exit_code = 2


class ArchCodeError(ConfigError):
    """An architecture code is malformed (wrong length, value or type)."""


class NoSuchRunError(ConfigError):
    """A run directory named on the command line (--run) does not exist: a usage mistake, exit 2."""


class DataError(EfnasError):
    """Training/validation data is missing, empty, corrupt or inconsistent."""


class EmptySplitError(DataError):
    """A split folder holds no usable sample (a run with ``val_samples == 0`` measures nothing)."""


class CheckpointError(EfnasError):
    """A checkpoint or run directory cannot be written, read or resumed."""


class ExportError(EfnasError):
    """An exported model failed its check after conversion (e.g. an int8 file that is not full-integer)
    or an export file no longer matches its manifest."""


class NoSpaceError(EfnasError):
    """A write ran out of disk space or quota; the message names the path and what was kept."""


class NotWritableError(EfnasError):
    """A write was refused by the system (read-only file system, no permission); the message names the path."""


class SubmitError(EfnasError):
    """A SLURM submission cannot be prepared or was refused."""


class LockedError(EfnasError):
    """Another process holds the directory this one was asked to write (a run directory, a pack --out)."""


class SearchError(EfnasError):
    """A search cannot start or go on: bad constraint or budget, damaged result store."""


class SearchUsageError(SearchError, ConfigError):
    """A search option is invalid (budget, constraint, fixed block, population): a usage mistake, exit 2."""


class StudyError(EfnasError):
    """A ranking study cannot go on: a training failed, or its artifacts disagree with its config."""


class DivergenceError(EfnasError):
    """Training produced a non-finite loss, gradient norm or variable; the update was not applied."""
