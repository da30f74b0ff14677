"""Where the network APIs may read and write data: the allowlist of data locations.

A caller of the Comprehend API names files by URL (``InputDataConfig.S3Uri``,
``OutputDataConfig.S3Uri``). Without a check an API key would turn the server into a reader
of its own files (``file:///etc/shadow``), a writer into any folder, and a client of any
host an fsspec protocol reaches (``http://``, ``ftp://``, ``zip://``, ``simplecache::``).
:meth:`DataLocations.check` lets through only locations inside the project's artifact store
and the roots of ``TAGLOOP_ALLOWED_DATA_URLS``, and returns the normalised URL the services
must then open: for a local path its real path (symlinks and ``..`` resolved), so a link
swapped after the check changes nothing.

Rules (parsing in ``domain/locations.py``):

- a plain absolute path and a ``file:///`` URL are the same; relative paths are refused;
- a local path is allowed when both the path as written and its real path lie inside an
  allowed folder, compared at a folder boundary (``/srv/in`` does not allow ``/srv/inbox2``);
- a remote URL is allowed when its protocol and host (bucket) are those of an entry and its
  key lies under the entry's prefix; ``.``/``..``/empty segments, queries and fragments are
  refused, and so is protocol chaining (``::``) anywhere;
- every protocol no entry names is refused.

Every refusal has one message, whatever the location is (missing, a file, a folder, a
protocol), so the answer never tells whether a path exists. The CLI does not use this: the
machine's own user reads any path it is given.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

from tagloop.domain.locations import LOCAL, Location, parse_location
from tagloop.errors import ConfigurationError, InvalidRequest, LocationNotAllowed
from tagloop.settings import Settings

SETTING = "TAGLOOP_ALLOWED_DATA_URLS"
SHOWN_CHARS = 200


class DataLocations:
    """The allowed data locations: the artifact store plus the configured roots."""

    def __init__(self, roots: Iterable[str], artifacts_url: str | None = None) -> None:
        self.written: list[Location] = []  # roots as configured (local: also their real path)
        self.real: list[Location] = []  # roots with local folders by their real path
        if artifacts_url:
            parsed = _root(artifacts_url)
            if parsed is not None:  # an artifact store no path rule can describe is simply not offered
                self._add(*parsed)
        for entry in roots:
            parsed = _root(entry)
            if parsed is None:
                raise ConfigurationError(
                    f"{SETTING}: {entry!r} is not a folder or URL prefix tagloop can compare "
                    "(use an absolute path, file:///path/ or protocol://bucket/prefix/, without "
                    "'..', '::', queries or user names)"
                )
            self._add(*parsed)

    @classmethod
    def from_settings(cls, settings: Settings) -> DataLocations:
        return cls(settings.allowed_data_urls, settings.resolved_artifacts_url)

    def _add(self, written: Location, real: Location) -> None:
        self.written += [written, real] if written != real else [written]
        self.real.append(real)

    @property
    def roots(self) -> list[str]:
        """The allowed roots as URLs (local folders by their real path), for messages and docs."""
        return [_url(root, LOCAL) for root in self.real]

    def check(self, url: object, purpose: str) -> str:
        """The normalised URL to open for ``url``, or LocationNotAllowed.

        ``purpose`` names the field in the message (e.g. ``InputDataConfig.S3Uri``).
        """
        if not isinstance(url, str):
            raise InvalidRequest(f"{purpose} must be a string")
        location = parse_location(url)
        if location is None or not any(location.within(root) for root in self.written):
            raise self._refused(url, purpose)
        if not location.is_local:
            return _url(location, location.protocol)
        real = parse_location(os.path.realpath(location.path))
        if real is None or not any(real.within(root) for root in self.real):
            raise self._refused(url, purpose)
        return _url(real, "file" if "://" in url else "")

    def confirm(self, url: str, purpose: str) -> str:
        """``url`` if it is allowed and already normalised (no link on its way), else refused.

        Jobs call this just before they open or write a location their submission checked:
        a link put in its way since then refuses it instead of leading elsewhere.
        """
        if self.check(url, purpose) != url:
            raise self._refused(url, purpose)
        return url

    def allows_as_is(self, url: str) -> bool:
        """Whether :meth:`confirm` would let ``url`` through."""
        try:
            self.confirm(url, "location")
        except InvalidRequest:
            return False
        return True

    @staticmethod
    def _refused(url: str, purpose: str) -> LocationNotAllowed:
        shown = url if len(url) <= SHOWN_CHARS else url[:SHOWN_CHARS] + "…"
        return LocationNotAllowed(
            f"{purpose} {shown!r} is not in an allowed data location (setting {SETTING})"
        )


def _root(entry: str) -> tuple[Location, Location] | None:
    """An allowlist entry as written and by its real path (the same for a remote prefix)."""
    entry = entry.strip()
    if "://" not in entry:
        entry = os.path.abspath(os.path.expanduser(entry))  # the administrator's relative folder
    written = parse_location(entry)
    if written is None:
        return None
    if not written.is_local:
        return written, written
    real = parse_location(os.path.realpath(written.path))
    return (written, real) if real is not None else None


def _url(location: Location, scheme: str) -> str:
    """``location`` as a URL: ``scheme://`` + path for local ones (a plain path when ``scheme`` is
    empty), ``protocol://host/key`` for remote ones."""
    if location.is_local:
        return f"{scheme}://{location.path}" if scheme else location.path
    return f"{location.protocol}://{location.host}" + (f"/{location.path}" if location.path else "")
