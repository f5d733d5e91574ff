"""Encapsulated PDF (SOP class 1.2.840.10008.5.1.4.1.1.104.1) of the clinician report, in the source study.

highdicom has no Encapsulated PDF class, so the dataset is assembled with pydicom module by module
(PS3.3 A.45.1): Patient and General Study (copied from the source slice), Encapsulated Document Series
(modality DOC), General Equipment, SC Equipment (conversion type WSD: made on a workstation),
Encapsulated Document (the PDF bytes, padded to even length as OB requires) and SOP Common.  The report
shows the patient's name and ID, so Burned In Annotation (0028,0301) is YES.
"""

from __future__ import annotations

from datetime import datetime

from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from lungcad.report.dicom_common import PDF_SERIES_NUMBER, Producer

ENCAPSULATED_PDF = "1.2.840.10008.5.1.4.1.1.104.1"
_PATIENT_STUDY = (
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "PatientSex",
    "PatientAge",
    "StudyInstanceUID",
    "StudyDate",
    "StudyTime",
    "ReferringPhysicianName",
    "StudyID",
    "AccessionNumber",
    "StudyDescription",
)
_TYPE2 = (
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "PatientSex",
    "StudyDate",
    "StudyTime",
    "ReferringPhysicianName",
    "StudyID",
    "AccessionNumber",
)


def build_pdf_dataset(
    pdf: bytes, source: Dataset, producer: Producer, title: str, references: list[Dataset] | None = None
) -> Dataset:
    """The Encapsulated PDF dataset.

    Args:
        pdf: the PDF file's bytes.
        source: a source slice header (patient and study attributes are copied from it).
        producer: equipment attributes.
        title: Document Title (0042,0010).
        references: instances the document was made from (the SR), listed in Source Instance Sequence.
    """
    now = datetime.now()
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 192"
    for keyword in _PATIENT_STUDY:
        if keyword in source:
            setattr(ds, keyword, source.data_element(keyword).value)
    for keyword in _TYPE2:
        if keyword not in ds:
            setattr(ds, keyword, "")
    ds.Modality = "DOC"
    ds.SeriesInstanceUID = generate_uid()
    ds.SeriesNumber = PDF_SERIES_NUMBER
    ds.SeriesDescription = "lungcad report (PDF)"
    ds.Manufacturer = producer.manufacturer
    ds.ManufacturerModelName = producer.model_name
    ds.SoftwareVersions = producer.software_versions
    ds.DeviceSerialNumber = producer.serial_number
    ds.ConversionType = "WSD"
    ds.InstanceNumber = 1
    ds.ContentDate = now.strftime("%Y%m%d")
    ds.ContentTime = now.strftime("%H%M%S")
    ds.AcquisitionDateTime = now.strftime("%Y%m%d%H%M%S")
    ds.BurnedInAnnotation = "YES"
    ds.DocumentTitle = title[:64]
    ds.ConceptNameCodeSequence = Sequence()
    ds.MIMETypeOfEncapsulatedDocument = "application/pdf"
    ds.EncapsulatedDocumentLength = len(pdf)
    ds.EncapsulatedDocument = pdf + (b"\0" if len(pdf) % 2 else b"")
    if references:
        items = []
        for ref in references:
            item = Dataset()
            item.ReferencedSOPClassUID = ref.SOPClassUID
            item.ReferencedSOPInstanceUID = ref.SOPInstanceUID
            items.append(item)
        ds.SourceInstanceSequence = Sequence(items)
    ds.SOPClassUID = ENCAPSULATED_PDF
    ds.SOPInstanceUID = generate_uid()
    ds.InstanceCreationDate = ds.ContentDate
    ds.InstanceCreationTime = ds.ContentTime
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta = meta
    return ds


def pdf_bytes(ds: Dataset) -> bytes:
    """The PDF inside an Encapsulated PDF dataset (the even-length padding removed)."""
    data = bytes(ds.EncapsulatedDocument)
    n = int(ds.get("EncapsulatedDocumentLength", len(data)))
    return data[:n]
