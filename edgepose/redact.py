"""Secrets out of what is printed: stream URLs with passwords, query tokens."""

from __future__ import annotations

import re

_SCHEME = re.compile(r"[a-zA-Z][a-zA-Z0-9+.-]*://")
#: Names that hold secrets, the one list: a config key that is (or nearly is) one of them is never echoed in an
#: error (:func:`edgepose.config.looks_secret`), a URL query parameter holding one is redacted.
SECRET_WORDS = (
    "password",
    "passwd",
    "pass",
    "pwd",
    "passphrase",
    "secret",
    "token",
    "psk",
    "key",
    "keys",
    "credential",
    "credentials",
    "apikey",
)
#: Query parameters that carry a secret on cameras' HTTP/RTSP URLs (``?user=admin&pwd=...``, ``?token=...``): any name
#: holding a secret word or ``auth``/``sig`` (signed URLs), or exactly ``pw`` (too short to look for inside names).
_SECRET_PARAM = re.compile(r"(?i)^(.*(" + "|".join((*SECRET_WORDS, "auth", "sig")) + r").*|pw)$")
_PARAM = re.compile(r"(?P<sep>[?&;])(?P<name>[^=&;#]*)=(?P<value>[^&;#]*)")


def redact_url(url: str) -> str:
    """``rtsp://user:secret@host/x`` -> ``rtsp://user:***@host/x`` (for logs, errors, printed configs and status topics).

    The user information ends at the last ``@`` before the query, so a password holding ``@`` or ``/`` is hidden
    whole; query values named like secrets (``pwd=``, ``token=``, ``api_key=``) become ``***`` too. Any URL inside
    the text is redacted, so error messages can be passed through as well.
    """
    out, pos = [], 0
    for m in _SCHEME.finditer(url):
        if m.start() < pos:
            continue
        out.append(url[pos : m.end()])
        end = len(url)
        # A URL inside a longer message ends at a blank or a quote; a whole value (a config's uri) is all URL,
        # so a password with a blank in it is hidden whole too.
        stops = ("\n",) if m.start() == 0 else (" ", "\t", "\n", "'", '"', ">")
        for stop in stops:
            i = url.find(stop, m.end())
            if i != -1:
                end = min(end, i)
        rest = url[m.end() : end]
        query_at = min((i for i in (rest.find("?"), rest.find("#")) if i != -1), default=len(rest))
        at = rest.rfind("@", 0, query_at)
        if at != -1:
            info = rest[:at]
            if ":" in info:
                rest = info.split(":", 1)[0] + ":***" + rest[at:]
            elif "/" not in info:
                rest = info + rest[at:]  # a user name alone
        rest = _PARAM.sub(
            lambda p: f"{p['sep']}{p['name']}=***" if _SECRET_PARAM.match(p["name"]) and p["value"] else p[0], rest
        )
        out.append(rest)
        pos = end
    out.append(url[pos:])
    return "".join(out)
