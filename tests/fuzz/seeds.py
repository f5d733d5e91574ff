"""Valid seed inputs for the fuzz tests: real files from tests/data and small files built here."""

from __future__ import annotations

import functools
import tempfile
from pathlib import Path

import numpy as np

from lungcad.io.dicom_write import write_ct_series
from lungcad.types import CTVolume
from tests.conftest import REPO

SLAB = REPO / "tests" / "data" / "lidc_slab_0001"
#: In the bundled slab's slices the header ends at byte 2164, where Pixel Data (7FE0,0010) starts.
SLAB_HEADER_END = 2200


def slab_slices() -> list[Path]:
    """The 16 real LIDC-IDRI-0001 slices (uncompressed, 512 x 512)."""
    return sorted(SLAB.rglob("*.dcm"))


def slab_xml() -> Path:
    """The real LIDC XML of the slab's series (4 readers, 310 kB)."""
    return next(SLAB.rglob("*.xml"))


@functools.cache
def small_ct_slices() -> tuple[bytes, bytes]:
    """Two slices of a 3 x 16 x 16 CT written by ``write_ct_series`` (1.7 kB each, header-dominated)."""
    hu = np.random.default_rng(0).normal(-500, 100, (3, 16, 16)).round().astype(np.float32)
    with tempfile.TemporaryDirectory() as tmp:
        paths = write_ct_series(CTVolume(hu, (2.0, 0.7, 0.7)), tmp, uid_seed="fuzz").paths
        return paths[0].read_bytes(), paths[1].read_bytes()


#: A compact LIDC read: one contoured nodule (two contours, one an exclusion), one nodule < 3 mm and one
#: non-nodule, in the real files' namespace and layout.  Small, so that mutations hit its structure.
COMPACT_LIDC_XML = b"""<?xml version="1.0" encoding="UTF-8"?>
<LidcReadMessage uid="1.3.6.1.4.1.14519.5.2.1.6279.6001.1307390687803.0" xmlns="http://www.nih.gov">
<ResponseHeader>
<SeriesInstanceUid>1.3.6.1.4.1.14519.5.2.1.6279.6001.179049373636438705059720603192</SeriesInstanceUid>
<StudyInstanceUID>1.3.6.1.4.1.14519.5.2.1.6279.6001.298806137288633453246975630178</StudyInstanceUID>
</ResponseHeader>
<readingSession>
    <annotationVersion>3.12</annotationVersion>
    <servicingRadiologistID>540461523</servicingRadiologistID>
    <unblindedReadNodule>
      <noduleID>Nodule 001</noduleID>
      <characteristics>
        <subtlety>5</subtlety><internalStructure>1</internalStructure><calcification>6</calcification>
        <sphericity>3</sphericity><margin>3</margin><lobulation>3</lobulation><spiculation>4</spiculation>
        <texture>5</texture><malignancy>5</malignancy>
      </characteristics>
      <roi>
        <imageZposition>-125.000000 </imageZposition>
        <imageSOP_UID>1.3.6.1.4.1.14519.5.2.1.6279.6001.110383487652933113465768208719</imageSOP_UID>
        <inclusion>TRUE</inclusion>
        <edgeMap><xCoord>312</xCoord><yCoord>355</yCoord></edgeMap>
        <edgeMap><xCoord>311</xCoord><yCoord>356</yCoord></edgeMap>
        <edgeMap><xCoord>313</xCoord><yCoord>357</yCoord></edgeMap>
      </roi>
      <roi>
        <imageZposition>-122.500000 </imageZposition>
        <imageSOP_UID>1.3.6.1.4.1.14519.5.2.1.6279.6001.110383487652933113465768208720</imageSOP_UID>
        <inclusion>FALSE</inclusion>
        <edgeMap><xCoord>312</xCoord><yCoord>356</yCoord></edgeMap>
      </roi>
    </unblindedReadNodule>
    <unblindedReadNodule>
      <noduleID>Nodule 002</noduleID>
      <roi>
        <imageZposition>-110.000000 </imageZposition>
        <imageSOP_UID>1.3.6.1.4.1.14519.5.2.1.6279.6001.110383487652933113465768208721</imageSOP_UID>
        <inclusion>TRUE</inclusion>
        <edgeMap><xCoord>200</xCoord><yCoord>150</yCoord></edgeMap>
      </roi>
    </unblindedReadNodule>
    <nonNodule>
      <nonNoduleID>_Non-nodule 001</nonNoduleID>
      <imageZposition>-115.000000 </imageZposition>
      <imageSOP_UID>1.3.6.1.4.1.14519.5.2.1.6279.6001.110383487652933113465768208722</imageSOP_UID>
      <locus><xCoord>100</xCoord><yCoord>300</yCoord></locus>
    </nonNodule>
</readingSession>
</LidcReadMessage>
"""

_UID = "1.3.6.1.4.1.14519.5.2.1.6279.6001.100225287222365663678666836860"
LUNA16_ANNOTATIONS = (
    "seriesuid,coordX,coordY,coordZ,diameter_mm\n"
    f"{_UID},-128.6994211,-175.3192718,-298.3875064,5.651470635\n"
    f"{_UID},103.7836509,-211.9251487,-227.12125,4.224708481\n"
).encode()
LUNA16_EXCLUDED = (
    "seriesuid,coordX,coordY,coordZ,diameter_mm\n"
    f"{_UID},-128.6994211,-175.3192718,-298.3875064,-1\n"
    f"{_UID},69.6389,-140.9446,876.3749,0.0001\n"
).encode()
LUNA16_CANDIDATES = (
    f"seriesuid,coordX,coordY,coordZ,class\n{_UID},-56.08,-67.85,-311.92,0\n{_UID},53.21,-244.41,-245.17,1\n"
).encode()
