"""Result delivery by C-STORE (PS3.4 B, the SCU side; pynetdicom): one association per object.

Which failures are worth another attempt (``Attempt.transient``) -- the same object may be stored a moment
later -- and which are not (the same bytes sent again would be refused the same way):

* **transient**: no association (connection refused, host unreachable, a timeout: the PACS is down or
  restarting); an association rejected with result *rejected-transient* (PS3.8 9.3.4: "temporary
  congestion", "local limit exceeded"); an A-ABORT or no C-STORE response before ``timeout_s``; the
  C-STORE statuses *Refused: Out of Resources* (0xA700-0xA7FF), *Processing Failure* (0x0110), *Resource
  Limitation* (0x0213) and *Cancel* (0xFE00).
* **permanent**: an association rejected with result *rejected-permanent* (called / calling AE title not
  recognised, no reason given); the destination accepts no presentation context for the object's SOP class
  (it does not store Segmentation / SR / Encapsulated PDF); every other failure status, e.g. *Error: Data
  Set Does Not Match SOP Class* (0xA900-0xA9FF), *Error: Cannot Understand* (0xC000-0xCFFF), *SOP Class Not
  Supported* (0x0122), *Not Authorized* (0x0124), *Duplicate SOP Instance* (0x0111).
* **success**: 0x0000, and the warnings 0xB000 (coercion of data elements), 0xB006 (elements discarded),
  0xB007 (data set does not match SOP class): the PACS stored the object; the warning is kept as the
  delivery's ``last_status``.

The dataset is sent as read from the result folder; pynetdicom converts between the uncompressed transfer
syntaxes (explicit / implicit VR little endian) when the peer accepts only the other one.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from lungcad.service.delivery_attempt import Attempt

if TYPE_CHECKING:
    from lungcad.service.settings import DeliveryDestination

EXPLICIT_VR_LE, IMPLICIT_VR_LE = "1.2.840.10008.1.2.1", "1.2.840.10008.1.2"
WARNINGS = frozenset({0xB000, 0xB006, 0xB007})
_TRANSIENT_STATUSES = frozenset({0x0110, 0x0213, 0xFE00})
_REJECTED_TRANSIENT = 2  # A-ASSOCIATE-RJ result (PS3.8 9.3.4): 1 rejected-permanent, 2 rejected-transient


def classify_status(code: int) -> Attempt:
    """The outcome of a C-STORE response status (PS3.4 B.2.3, PS3.7 C)."""
    if code == 0x0000:
        return Attempt(ok=True, status=code)
    if code in WARNINGS:
        return Attempt(ok=True, status=code, error=f"stored with warning 0x{code:04X}")
    transient = 0xA700 <= code <= 0xA7FF or code in _TRANSIENT_STATUSES
    what = "refused: out of resources" if 0xA700 <= code <= 0xA7FF else "failed"
    return Attempt(ok=False, transient=transient, status=code, error=f"C-STORE {what} (status 0x{code:04X})")


def send(dest: DeliveryDestination, path: Path) -> Attempt:
    """C-STORE the DICOM file ``path`` to ``dest`` (one association, released afterwards)."""
    import pydicom
    from pynetdicom import AE, evt

    ds = pydicom.dcmread(path)
    sop_class = str(ds.SOPClassUID)
    ts = str(ds.file_meta.TransferSyntaxUID)
    ae = AE(ae_title=dest.calling_ae)
    for name in ("acse_timeout", "dimse_timeout", "network_timeout", "connection_timeout"):
        setattr(ae, name, dest.timeout_s)
    ae.add_requested_context(sop_class, list(dict.fromkeys([ts, EXPLICIT_VR_LE, IMPLICIT_VR_LE])))
    connected: list[bool] = []  # EVT_CONN_OPEN: the TCP connection stood (an abort after it is the peer's)
    handlers = [(evt.EVT_CONN_OPEN, lambda _event: connected.append(True))]
    assoc = ae.associate(dest.host, dest.port, ae_title=dest.called_ae, evt_handlers=handlers)
    if not assoc.is_established:
        if connected and any(c.abstract_syntax == sop_class for c in assoc.rejected_contexts):
            return _refused_class(sop_class)  # pynetdicom aborts an association with no accepted context
        return _not_associated(assoc, dest, bool(connected))
    try:
        if not any(c.abstract_syntax == sop_class for c in assoc.accepted_contexts):
            return _refused_class(sop_class)
        status = assoc.send_c_store(ds)
    finally:
        if assoc.is_established:
            assoc.release()
    if status is None or "Status" not in status:  # an abort or no response within dimse_timeout
        return Attempt(
            ok=False, transient=True, error="no C-STORE response (association aborted or timed out)"
        )
    return classify_status(int(status.Status))


def _not_associated(assoc: Any, dest: DeliveryDestination, connected: bool) -> Attempt:
    if not connected:  # pynetdicom reports a refused connection as an abort too
        return Attempt(
            ok=False,
            transient=True,
            error=f"no association: cannot connect to {dest.host}:{dest.port} (refused, unreachable or "
            f"timed out after {dest.timeout_s:g} s)",
        )
    if assoc.is_rejected:
        rsp = getattr(assoc.acceptor, "primitive", None)
        result = getattr(rsp, "result", None)
        text = f"{getattr(rsp, 'result_str', 'rejected')}: {getattr(rsp, 'reason_str', 'no reason')}"
        return Attempt(
            ok=False, transient=result == _REJECTED_TRANSIENT, error=f"association rejected ({text})"
        )
    why = "aborted by the destination" if assoc.is_aborted else f"no answer within {dest.timeout_s:g} s"
    return Attempt(ok=False, transient=True, error=f"no association: {why}")


def _refused_class(sop_class: str) -> Attempt:
    from pydicom.uid import UID

    name = UID(sop_class).name
    return Attempt(
        ok=False, error=f"the destination accepts no presentation context for SOP class {sop_class} ({name})"
    )
