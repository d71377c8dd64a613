"""Error types of aa_distill."""

from __future__ import annotations


class NamFormatError(ValueError):
    """A ``.nam`` file (or an in-memory ``.nam`` document) that this reader cannot use.

    Raised for malformed JSON, a missing key, an unsupported version or architecture, a
    configuration that is inconsistent, a weight count that does not match the
    configuration, and non-finite weights. The message always names the file (where there
    is one), what was expected and what was found.
    """
