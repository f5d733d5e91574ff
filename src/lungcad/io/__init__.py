"""Input/output: load CT from DICOM / MetaImage / NIfTI into ``CTVolume``; write volumes and DICOM."""

from lungcad.io.load import InputListing, list_input, load_ct, load_ct_with_discovery, load_listed

__all__ = ["InputListing", "list_input", "load_ct", "load_ct_with_discovery", "load_listed"]
