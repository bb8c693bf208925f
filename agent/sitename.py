"""Site names: the registrable domain (eTLD+1) an upload page belongs to.

``www.instagram.com`` and ``m.instagram.com`` are one site, ``instagram.com``. The Public Suffix List ships
inside the ``publicsuffixlist`` wheel, so nothing is fetched at run time. IP addresses and single-label hosts
(``localhost``) are their own site. Names are stored in their ASCII (IDNA) form.
"""

from __future__ import annotations

import functools
import ipaddress
from urllib.parse import urlsplit

from publicsuffixlist import PublicSuffixList


class SiteError(ValueError):
    """The text does not name a site marks can be issued for."""


@functools.cache
def _psl() -> PublicSuffixList:
    return PublicSuffixList()


def site_of(text: str) -> str:
    """The site for a URL, an origin or a bare host name."""
    raw = text.strip()
    if not raw:
        raise SiteError("empty site name")
    try:
        host = urlsplit(raw).hostname if "://" in raw else urlsplit("//" + raw).hostname
    except ValueError as exc:  # e.g. an unclosed IPv6 bracket
        raise SiteError(f"{text!r} is not a valid URL or host name ({exc})") from None
    if not host:
        raise SiteError(f"no host name in {text!r}")
    host = host.rstrip(".").lower()
    try:
        return str(ipaddress.ip_address(host.strip("[]")))
    except ValueError:
        pass
    try:
        host = host.encode("idna").decode("ascii")
    except UnicodeError:
        raise SiteError(f"{text!r} is not a valid host name") from None
    if "." not in host:
        return host
    site = _psl().privatesuffix(host)
    if site is None:
        raise SiteError(f"{host!r} is a public suffix, not a site (did you mean a name under it?)")
    return site
