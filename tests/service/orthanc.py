"""A real Orthanc (Debian's ``orthanc`` + ``orthanc-dicomweb``) for tests, started on free loopback ports
with its own configuration and storage under the test's tmp folder; stopped (SIGTERM, then SIGKILL of its
tree) at the end however the test ends.

Configuration keys (Orthanc's ``Configuration.json`` as the Debian package documents it in
``/etc/orthanc/orthanc.json``): ``HttpPort`` / ``DicomPort`` (free ports), ``DicomAet``, ``StorageDirectory``
+ ``IndexDirectory`` (tmp), ``RemoteAccessAllowed`` false (loopback only) and ``AuthenticationEnabled``
false, ``DicomModalities`` (the lungcad listener as ``lungcad``: ``[AET, host, port]``), ``Plugins`` with the
DICOMweb plugin of ``orthanc-dicomweb`` and its ``DicomWeb`` section (STOW-RS at ``/dicom-web/studies``),
``DicomAlwaysAllowStore`` true (lungcad's C-STORE SCU need not be declared), ``SaveJobs`` false.
"""

from __future__ import annotations

import atexit
import json
import shutil
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from tests.service.processes import ServerProcess, ServerUnavailable, free_port, spawn, tail

PLUGIN_DIRS = (Path("/usr/share/orthanc/plugins"), Path("/usr/lib/orthanc"))
START_TIMEOUT_S = 60.0


def orthanc_binary() -> str | None:
    return shutil.which("Orthanc") or next(
        (p for p in ("/usr/sbin/Orthanc", "/usr/bin/Orthanc") if Path(p).exists()), None
    )


def dicomweb_plugin() -> Path | None:
    for folder in PLUGIN_DIRS:
        found = sorted(folder.glob("libOrthancDicomWeb.so*")) if folder.is_dir() else []
        if found:
            return found[0]
    return None


@dataclass
class Orthanc:
    server: ServerProcess
    http_port: int
    dicom_port: int
    aet: str

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def dicomweb(self) -> str:
        return f"{self.url}/dicom-web"

    def get(self, path: str) -> Any:
        r = httpx.get(self.url + path, timeout=30)
        r.raise_for_status()
        return r.json()

    def post(self, path: str, **kwargs: Any) -> Any:
        r = httpx.post(self.url + path, timeout=120, **kwargs)
        r.raise_for_status()
        return r.json() if r.content else None

    def stop(self) -> None:
        self.server.stop()


def _config(folder: Path, name: str, aet: str, http_port: int, dicom_port: int, modalities: dict) -> Path:
    storage = folder / "storage"
    storage.mkdir(parents=True, exist_ok=True)
    plugin = dicomweb_plugin()
    doc = {
        "Name": name,
        "HttpPort": http_port,
        "DicomPort": dicom_port,
        "DicomAet": aet,
        "StorageDirectory": str(storage),
        "IndexDirectory": str(storage),
        "RemoteAccessAllowed": False,
        "AuthenticationEnabled": False,
        "DicomAlwaysAllowStore": True,
        "DicomCheckCalledAet": False,
        "DicomModalities": modalities,
        "Plugins": [str(plugin)] if plugin else [],
        "DicomWeb": {"Enable": True, "Root": "/dicom-web/", "EnableWado": False},
        "SaveJobs": False,
        "StableAge": 1,
    }
    path = folder / "orthanc.json"
    path.write_text(json.dumps(doc, indent=2))
    return path


def _answers(url: str) -> bool:
    try:
        return httpx.get(f"{url}/system", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def start_orthanc(
    folder: Path, *, name: str = "test", aet: str = "ORTHANC", modalities: dict, http_port: int | None = None
) -> Orthanc:
    """Start Orthanc with a configuration of its own in ``folder`` (on ``http_port`` when given, else a free
    port); raises ServerUnavailable (with the reason) when the binary or the DICOMweb plugin is missing or
    the server does not start."""
    binary = orthanc_binary()
    if binary is None:
        raise ServerUnavailable("no Orthanc binary (apt-get install orthanc orthanc-dicomweb)")
    if dicomweb_plugin() is None:
        raise ServerUnavailable("no DICOMweb plugin (apt-get install orthanc-dicomweb)")
    folder.mkdir(parents=True, exist_ok=True)
    last = ""
    fixed = http_port
    for attempt in range(3):  # a port taken between free_port() and Orthanc's bind: new ports
        http_port, dicom_port = fixed or free_port(), free_port()
        config = _config(folder, name, aet, http_port, dicom_port, modalities)
        log = folder / f"orthanc-{attempt}.log"
        server = ServerProcess(spawn([binary, str(config)], log), log, signal.SIGTERM)
        atexit.register(server.stop)
        url = f"http://127.0.0.1:{http_port}"
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline and server.alive() and not _answers(url):
            time.sleep(0.1)
        if server.alive() and _answers(url):
            plugins = httpx.get(f"{url}/plugins", timeout=5).json()
            if "dicom-web" not in plugins:
                server.stop()
                raise ServerUnavailable(f"Orthanc started without its DICOMweb plugin: {plugins}")
            return Orthanc(server, http_port, dicom_port, aet)
        last = tail(log)
        server.stop()
    raise ServerUnavailable(f"Orthanc did not start (3 tries); its log ends:\n{last}")
