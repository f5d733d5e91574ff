"""Result delivery by DICOMweb STOW-RS (PS3.18 10.5): one ``POST {url}/studies`` per object, a
``multipart/related; type="application/dicom"`` body of one part (the Part-10 file as written).

Which answers are worth another attempt (``Attempt.transient``) and which are not:

* **transient**: no answer (connection refused, DNS, TLS handshake or read failures, a timeout after
  ``timeout_s``); HTTP 408, 429 and 5xx other than 501 / 505 (the server is down, overloaded or restarting);
  a 202 / 409 whose Failed SOP Sequence gives the Failure Reason *Refused: Out of Resources* (0xA7xx).
* **permanent**: every other 4xx (400 malformed, 401 / 403 credentials, 404 wrong URL, 413 too large, 415
  media type refused), 501 / 505, and a 202 / 409 that lists the object in its Failed SOP Sequence
  (0008,1198) with any other reason (e.g. 0xA900 the data set does not match the SOP class, 0xC000 cannot
  understand) -- the same body sent again would be refused again.
* **success**: 200, or a 202 that names the object only with a Warning Reason (0008,1196): stored.

Credentials: HTTP basic (``username`` + ``password``) or ``Authorization: Bearer <token>``; they go only in
the request headers, never into the log.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from lungcad.service.delivery_attempt import Attempt

if TYPE_CHECKING:
    from lungcad.service.settings import DeliveryDestination

FAILED_SOP_SEQUENCE = "00081198"
FAILURE_REASON = "00081197"
WARNING_REASON = "00081196"
REFERENCED_SOP_SEQUENCE = "00081199"
_NOT_RETRIED_5XX = frozenset({501, 505})
_TRANSIENT_4XX = frozenset({408, 429})


def body_of(data: bytes, boundary: str) -> bytes:
    """A one-part ``multipart/related`` body (RFC 2387) holding the DICOM file ``data``."""
    head = f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode()
    return head + data + f"\r\n--{boundary}--\r\n".encode()


def _headers(dest: DeliveryDestination, boundary: str) -> dict[str, str]:
    headers = {
        "Content-Type": f'multipart/related; type="application/dicom"; boundary={boundary}',
        "Accept": "application/dicom+json",
        "User-Agent": "lungcad-delivery/1",
    }
    if dest.token.get_secret_value():
        headers["Authorization"] = f"Bearer {dest.token.get_secret_value()}"
    return headers


def send(dest: DeliveryDestination, path: Path, *, client: httpx.Client | None = None) -> Attempt:
    """POST the DICOM file ``path`` to ``dest``'s STOW-RS endpoint."""
    boundary = f"lungcad-{uuid.uuid4().hex}"
    auth = (dest.username, dest.password.get_secret_value()) if dest.username else None
    own = client or httpx.Client(verify=dest.verify_tls, follow_redirects=False)
    try:
        r = own.post(
            dest.stow_url,
            content=body_of(path.read_bytes(), boundary),
            headers=_headers(dest, boundary),
            auth=auth,
            timeout=dest.timeout_s,
        )
    except (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError) as exc:
        return Attempt(ok=False, transient=True, error=f"no STOW-RS answer ({type(exc).__name__}: {exc})")
    except httpx.HTTPError as exc:  # an invalid URL, an unsupported scheme: the setting is wrong
        return Attempt(ok=False, error=f"STOW-RS request impossible ({type(exc).__name__}: {exc})")
    finally:
        if client is None:
            own.close()
    return classify_response(r.status_code, _json(r))


def classify_response(code: int, doc: Any) -> Attempt:
    """The outcome of a STOW-RS answer: its HTTP status and its JSON body (None when it had none)."""
    failed = _first(doc, FAILED_SOP_SEQUENCE)
    if code == 200 and failed is None:
        return Attempt(ok=True, status=code)
    if code in (200, 202, 409) and failed is not None:
        reason = _first(failed, FAILURE_REASON)
        transient = isinstance(reason, int) and 0xA700 <= reason <= 0xA7FF
        why = f"failure reason 0x{reason:04X}" if isinstance(reason, int) else "no failure reason given"
        return Attempt(
            ok=False, transient=transient, status=code, error=f"STOW-RS refused the object ({why})"
        )
    if code == 202:
        warning = _first(_first(doc, REFERENCED_SOP_SEQUENCE) or {}, WARNING_REASON)
        note = f"warning reason 0x{warning:04X}" if isinstance(warning, int) else "accepted with warnings"
        return Attempt(ok=True, status=code, error=f"stored ({note})")
    transient = code in _TRANSIENT_4XX or (code >= 500 and code not in _NOT_RETRIED_5XX)
    return Attempt(ok=False, transient=transient, status=code, error=f"STOW-RS answered HTTP {code}")


def _json(r: httpx.Response) -> Any:
    try:
        return r.json() if r.content else None
    except ValueError:
        return None


def _first(doc: Any, tag: str) -> Any:
    """The first value of ``tag`` in a DICOM JSON object (PS3.18 F.2), or None."""
    if not isinstance(doc, dict):
        return None
    values = (doc.get(tag) or {}).get("Value") if isinstance(doc.get(tag), dict) else None
    return values[0] if isinstance(values, list) and values else None
