"""How reports become MIME: the email policy every message is built, written and read back with.

Why a module of its own: the mailer builds and writes reports, the spool writes them and reads their
headers back; both must use the same policy, defined once here.
"""

from __future__ import annotations

from email import headerregistry, policy


class _HeaderClassesBuiltOnce(headerregistry.HeaderRegistry):
    """The standard header registry, except that each header's class is built once per name.

    Why: the standard registry builds a new class (`type(...)`) every time a header is set, about 30
    times per report; that was a fifth of the cost of building and writing one. The classes are
    the same every time, so the messages are byte for byte what the standard policy writes."""

    def __init__(self) -> None:
        super().__init__()
        self._built: dict[str, type[headerregistry.BaseHeader]] = {}

    def __getitem__(self, name: str) -> type[headerregistry.BaseHeader]:
        key = name.lower()
        built = self._built.get(key)
        if built is None:
            built = self._built[key] = super().__getitem__(name)
        return built


MESSAGE_POLICY = policy.default.clone(header_factory=_HeaderClassesBuiltOnce())  # how reports are built
SMTP_POLICY = policy.SMTP.clone(header_factory=MESSAGE_POLICY.header_factory)  # how they are written (CRLF)
