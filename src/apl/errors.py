"""Exceptions apl raises on purpose; the CLI prints them as one line and exits non-zero."""


class APLError(Exception):
    """Base class: a problem the user can fix. The message names it and says how."""

    exit_code = 2


class ConfigError(APLError):
    """A config value is missing, unknown, or contradicts another."""


class DataError(APLError):
    """A prompt pool cannot be loaded: missing file or column, too few rows."""


class ModelLoadError(APLError):
    """A model or tokenizer cannot be loaded from the given name or path."""


class OracleError(APLError):
    """A judge failed in a way retrying will not fix (bad key, bad request, bad template)."""


class BudgetExceededError(OracleError):
    """The next judge call would overspend the USD or call budget; nothing was sent."""


class RunStoreError(APLError):
    """The run directory is unusable: unwritable, full, or made by a different config."""


class LabelsPendingError(APLError):
    """People have not given the labels a round needs yet; the run stops, `apl resume` goes on."""

    exit_code = 3  # not a mistake to fix: waiting, and distinguishable from bad input (2)


class LabelImportError(APLError):
    """A Label Studio / Argilla export cannot be imported; nothing from it was stored."""
