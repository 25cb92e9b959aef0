"""The storage data plane's two listings, blob containers and queues, over plain HTTP with an
account SAS: what `status`, `plan` and a no-op `up` ask the storage emulator in every command.

Why not the storage SDK: ``azure.storage.blob`` costs ~290 ms of start-up, ~170 ms of it
aiohttp, which its sync clients import too (``_shared/authentication.py`` tries
``from azure.core.pipeline.transport import AioHttpTransport`` at import time, 12.31), and
the SDK's sync transport brings ``requests`` (issue 17). The SAS itself is made by the SDK
(:func:`account_sas`, once, then kept by the caller): devslice signs nothing by hand.
"""

from __future__ import annotations

import http.client
import xml.etree.ElementTree as ET
from datetime import datetime
from urllib.parse import quote, urlsplit

TIMEOUT = 10.0  # seconds: the emulator on this machine answers in milliseconds


class SasRejected(Exception):
    """The service refused the SAS (401/403: expired, or signed with another key)."""


def account_sas(account: str, key: str, expiry: datetime) -> str:
    """An account SAS that lists blob containers and queues (``ss=bq&srt=s&sp=l``), until
    ``expiry``, made by the storage SDK."""
    # lazy: azure.storage.blob (~290 ms with aiohttp), only when no SAS is kept yet
    from azure.storage.blob import generate_account_sas

    return generate_account_sas(account, key, resource_types="s", permission="l",
                                expiry=expiry, services="bq")


def list_names(endpoint: str, sas: str, kind: str) -> set[str]:
    """The names of the account's blob containers (``kind="container"``, ``endpoint`` the
    blob endpoint) or queues (``kind="queue"``, the queue endpoint), every page.

    Raises :class:`SasRejected` on 401/403, :class:`OSError` when nothing answers or the
    answer is not a listing."""
    url = urlsplit(endpoint)
    if url.scheme not in ("http", "https") or not url.hostname:
        raise OSError(f"not an http(s) endpoint: {endpoint}")
    cls = http.client.HTTPSConnection if url.scheme == "https" else http.client.HTTPConnection
    conn = cls(url.hostname, url.port, timeout=TIMEOUT)
    path = url.path.rstrip("/") + "/"
    names: set[str] = set()
    marker = ""
    try:
        while True:
            query = f"comp=list&{sas.lstrip('?')}"
            if marker:
                query += f"&marker={quote(marker, safe='')}"
            conn.request("GET", f"{path}?{query}")
            response = conn.getresponse()
            body = response.read()
            if response.status in (401, 403):
                raise SasRejected(f"{response.status} {response.reason}")
            if response.status != 200:
                raise OSError(f"listing {kind}s at {endpoint}: {response.status} "
                              f"{response.reason}")
            try:
                root = ET.fromstring(body)
            except ET.ParseError as exc:
                raise OSError(f"listing {kind}s at {endpoint}: not XML ({exc})") from exc
            names.update(n.text or "" for n in root.iterfind(f"./{kind.title()}s/"
                                                              f"{kind.title()}/Name"))
            marker = root.findtext("NextMarker") or ""
            if not marker:
                return names
    finally:
        conn.close()
