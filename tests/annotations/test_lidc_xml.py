"""LIDC XML parser and writer on hand-written files (every quirk) and on the real XMLs (round trip)."""

from __future__ import annotations

from pathlib import Path

import pytest

from lungcad.annotations.lidc_xml import find_lidc_xml, read_lidc_xml, write_lidc_xml, xml_root_tag
from lungcad.annotations.model import LidcRead, PointMark, ReaderNodule, ReadingSession, Roi
from lungcad.errors import AnnotationError

# Two readers; namespace as in the real files; padded numbers; a nodule with all characteristics, one with
# an empty rating and an exclusion contour, a small nodule, a non-nodule.
XML = """<?xml version="1.0" encoding="UTF-8"?>
<LidcReadMessage uid="1.2.840.1" xmlns="http://www.nih.gov">
<ResponseHeader>
<SeriesInstanceUid>1.2.3.4</SeriesInstanceUid>
<StudyInstanceUID>1.2.3</StudyInstanceUID></ResponseHeader>
<readingSession>
  <annotationVersion>3.12</annotationVersion>
  <servicingRadiologistID>-540461523</servicingRadiologistID>
  <unblindedReadNodule>
    <noduleID>Nodule 001</noduleID>
    <characteristics>
      <subtlety>5</subtlety><internalStructure>1</internalStructure><calcification>6</calcification>
      <sphericity>3</sphericity><margin>3</margin><lobulation>3</lobulation><spiculation>4</spiculation>
      <texture>5</texture><malignancy>5</malignancy>
    </characteristics>
    <roi>
      <imageZposition>-125.000000 </imageZposition>
      <imageSOP_UID>1.2.3.4.100</imageSOP_UID>
      <inclusion>TRUE</inclusion>
      <edgeMap><xCoord>10</xCoord><yCoord>20</yCoord></edgeMap>
      <edgeMap><xCoord>14</xCoord><yCoord>20</yCoord></edgeMap>
      <edgeMap><xCoord>14</xCoord><yCoord>24</yCoord></edgeMap>
    </roi>
  </unblindedReadNodule>
  <unblindedReadNodule>
    <noduleID>Nodule 002</noduleID>
    <characteristics><subtlety>2</subtlety><malignancy></malignancy></characteristics>
    <roi>
      <imageZposition>-122.5</imageZposition>
      <imageSOP_UID>1.2.3.4.101</imageSOP_UID>
      <inclusion>TRUE</inclusion>
      <edgeMap><xCoord>1</xCoord><yCoord>2</yCoord></edgeMap>
      <edgeMap><xCoord>9</xCoord><yCoord>2</yCoord></edgeMap>
      <edgeMap><xCoord>9</xCoord><yCoord>9</yCoord></edgeMap>
    </roi>
    <roi>
      <imageZposition>-122.5</imageZposition>
      <imageSOP_UID>1.2.3.4.101</imageSOP_UID>
      <inclusion>FALSE</inclusion>
      <edgeMap><xCoord>5</xCoord><yCoord>4</yCoord></edgeMap>
    </roi>
  </unblindedReadNodule>
  <unblindedReadNodule>
    <noduleID>Nodule 003</noduleID>
    <roi>
      <imageZposition>-100.0</imageZposition>
      <imageSOP_UID>1.2.3.4.102</imageSOP_UID>
      <inclusion>TRUE</inclusion>
      <edgeMap><xCoord>300</xCoord><yCoord>301</yCoord></edgeMap>
    </roi>
  </unblindedReadNodule>
  <nonNodule>
    <nonNoduleID>_Non-nodule 001</nonNoduleID>
    <imageZposition>-90.25</imageZposition>
    <imageSOP_UID>1.2.3.4.103</imageSOP_UID>
    <locus><xCoord>347</xCoord><yCoord>362</yCoord></locus>
  </nonNodule>
</readingSession>
<readingSession>
  <servicingRadiologistID>anonymous</servicingRadiologistID>
</readingSession>
</LidcReadMessage>
"""

EXPECTED = LidcRead(
    series_uid="1.2.3.4",
    study_uid="1.2.3",
    sessions=(
        ReadingSession(
            reader_id="-540461523",
            nodules=(
                ReaderNodule(
                    "Nodule 001",
                    (Roi(-125.0, "1.2.3.4.100", True, ((10, 20), (14, 20), (14, 24))),),
                    {
                        "subtlety": 5,
                        "internalStructure": 1,
                        "calcification": 6,
                        "sphericity": 3,
                        "margin": 3,
                        "lobulation": 3,
                        "spiculation": 4,
                        "texture": 5,
                        "malignancy": 5,
                    },
                ),
                ReaderNodule(
                    "Nodule 002",
                    (
                        Roi(-122.5, "1.2.3.4.101", True, ((1, 2), (9, 2), (9, 9))),
                        Roi(-122.5, "1.2.3.4.101", False, ((5, 4),)),
                    ),
                    {"subtlety": 2},
                ),
            ),
            small_nodules=(PointMark("Nodule 003", -100.0, "1.2.3.4.102", 300, 301),),
            non_nodules=(PointMark("_Non-nodule 001", -90.25, "1.2.3.4.103", 347, 362),),
            annotation_version="3.12",
        ),
        ReadingSession(reader_id="anonymous"),
    ),
)


def _xml(tmp_path: Path, text: str, name: str = "read.xml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_parse_every_kind_of_mark(tmp_path: Path) -> None:
    assert read_lidc_xml(_xml(tmp_path, XML)) == EXPECTED


def test_without_namespace_gives_the_same_objects(tmp_path: Path) -> None:
    plain = XML.replace(' xmlns="http://www.nih.gov"', "")
    assert read_lidc_xml(_xml(tmp_path, plain)) == EXPECTED


def test_write_then_read_is_identity(tmp_path: Path) -> None:
    write_lidc_xml(EXPECTED, tmp_path / "sub" / "out.xml")
    assert read_lidc_xml(tmp_path / "sub" / "out.xml") == EXPECTED
    assert xml_root_tag(tmp_path / "sub" / "out.xml") == "LidcReadMessage"


def test_blinded_session_round_trips(tmp_path: Path) -> None:
    read = LidcRead("1.2", "1", (ReadingSession("7", nodules=EXPECTED.sessions[0].nodules, blinded=True),))
    write_lidc_xml(read, tmp_path / "b.xml")
    assert "<blindedReadNodule>" in (tmp_path / "b.xml").read_text()
    assert read_lidc_xml(tmp_path / "b.xml") == read


def test_writer_refuses_a_nodule_that_would_read_back_as_small(tmp_path: Path) -> None:
    lone = ReaderNodule("n1", (Roi(0.0, "1.1", True, ((3, 4),)),), None)
    read = LidcRead("1.2", "1", (ReadingSession("7", nodules=(lone,)),))
    with pytest.raises(AnnotationError, match=r"nodule 'n1' has one one-point contour.*small_nodules"):
        write_lidc_xml(read, tmp_path / "x.xml")
    assert not (tmp_path / "x.xml").exists()


def test_truncated_xml_names_file_and_line(tmp_path: Path) -> None:
    cut = XML[: XML.index("<inclusion>FALSE")]  # ends inside line 39
    path = _xml(tmp_path, cut)
    with pytest.raises(AnnotationError, match=r"LIDC XML line 39: no element found .*truncated") as info:
        read_lidc_xml(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        (
            "<xCoord>14</xCoord><yCoord>24",
            "<xCoord>1.5</xCoord><yCoord>24",
            r"line 22: <xCoord> must be an int",
        ),
        ("<inclusion>FALSE", "<inclusion>maybe", r"line 39: <inclusion> must be TRUE or FALSE, got 'maybe'"),
        (
            "-122.5</imageZposition>\n      <imageSOP_UID>1.2.3.4.101</imageSOP_UID>\n      <inclusion>FALSE",
            "x</imageZposition>\n      <imageSOP_UID>1.2.3.4.101</imageSOP_UID>\n      <inclusion>FALSE",
            r"line 37: <imageZposition> must be a finite number, got 'x'",
        ),
        (
            "<spiculation>4</spiculation>",
            "<spiculation>9</spiculation>",
            r"line 13: spiculation .* \[1, 5\], got '9'",
        ),
        (
            "<locus><xCoord>347</xCoord><yCoord>362</yCoord></locus>",
            "",
            r"line 52: <nonNodule> has no <locus",
        ),
        ("<ResponseHeader>", "<ResponseHeader><broken", r"line 4: not well-formed .*malformed XML"),
    ],
)
def test_bad_values_name_the_line(tmp_path: Path, old: str, new: str, message: str) -> None:
    assert old in XML
    with pytest.raises(AnnotationError, match=message):
        read_lidc_xml(_xml(tmp_path, XML.replace(old, new, 1)))


def test_tolerant_mode_drops_out_of_range_ratings(tmp_path: Path) -> None:
    bad = XML.replace("<spiculation>4</spiculation>", "<spiculation>9</spiculation><foo>1</foo>")
    path = _xml(tmp_path, bad)
    read = read_lidc_xml(path, strict=False)
    characteristics = read.sessions[0].nodules[0].characteristics
    assert characteristics is not None and "spiculation" not in characteristics and len(characteristics) == 8


def test_wrong_kinds_of_xml(tmp_path: Path) -> None:
    cxr = '<?xml version="1.0"?>\n<IdriReadMessage xmlns="http://www.nih.gov/idri"></IdriReadMessage>'
    with pytest.raises(
        AnnotationError, match=r"line 2: this is an IdriReadMessage, a chest-radiograph \(CXR\)"
    ):
        read_lidc_xml(_xml(tmp_path, cxr))
    with pytest.raises(AnnotationError, match=r"root element is <html>, expected <LidcReadMessage>"):
        read_lidc_xml(_xml(tmp_path, "<html></html>"))
    with pytest.raises(AnnotationError, match=r"LIDC XML file not found"):
        read_lidc_xml(tmp_path / "nothing.xml")
    with pytest.raises(AnnotationError, match=r"mixes blindedReadNodule and unblindedReadNodule"):
        mixed = XML.replace(
            "<unblindedReadNodule>\n    <noduleID>Nodule 003", "<blindedReadNodule>\n    <noduleID>Nodule 003"
        ).replace("</unblindedReadNodule>\n  <nonNodule>", "</blindedReadNodule>\n  <nonNodule>")
        read_lidc_xml(_xml(tmp_path, mixed))


def test_find_lidc_xml(tmp_path: Path) -> None:
    _xml(tmp_path, "<IdriReadMessage/>", "068.xml")
    with pytest.raises(AnnotationError, match=r"no LIDC CT read XML .* found: 068.xml \(<IdriReadMessage>\)"):
        find_lidc_xml(tmp_path)
    good = _xml(tmp_path, XML, "069.xml")
    assert find_lidc_xml(tmp_path) == good
    _xml(tmp_path, XML, "070.xml")
    with pytest.raises(AnnotationError, match=r"several LIDC XML files in the series folder: 069.xml, 070"):
        find_lidc_xml(tmp_path)


@pytest.mark.realdata
def test_real_cxr_read_is_rejected(cxr_xml: Path) -> None:
    with pytest.raises(AnnotationError, match=r"line 2: this is an IdriReadMessage.*Fix: use the LIDC XML"):
        read_lidc_xml(cxr_xml)


@pytest.mark.realdata
@pytest.mark.parametrize("which", ["0001", "0002", "0003"])
def test_real_xml_round_trip(
    which: str, lidc0001_dir: Path, slab_0002: Path, slab_0003: Path, tmp_path: Path
) -> None:
    folder = {"0001": lidc0001_dir, "0002": slab_0002, "0003": slab_0003}[which]
    read = read_lidc_xml(find_lidc_xml(folder))
    write_lidc_xml(read, tmp_path / "rt.xml")
    assert read_lidc_xml(tmp_path / "rt.xml") == read


def test_bundled_slab_counts(bundled_slab_0001: Path) -> None:
    read = read_lidc_xml(find_lidc_xml(bundled_slab_0001))
    assert read.series_uid == "1.3.6.1.4.1.14519.5.2.1.6279.6001.179049373636438705059720603192"
    counts = [(len(s.nodules), len(s.small_nodules), len(s.non_nodules)) for s in read.sessions]
    assert counts == [(1, 3, 4), (1, 0, 1), (1, 3, 8), (1, 3, 0)]
    assert [len(s.nodules[0].rois) for s in read.sessions] == [8, 7, 8, 9]
