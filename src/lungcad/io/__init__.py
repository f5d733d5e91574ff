"""Input/output: load CT from DICOM / MetaImage / NIfTI into ``CTVolume``; write volumes and DICOM."""

from lungcad.io.load import load_ct, load_ct_with_discovery

__all__ = ["load_ct", "load_ct_with_discovery"]
