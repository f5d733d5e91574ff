"""Fast intake of the common slice: native 16-bit pixel data read as a view, HU written into one volume.

Two measured costs of the per-slice path, on LIDC-IDRI-0001 (133 slices of 512 x 512, 2 cores):

* ``ds.pixel_array`` spends ~0.5 ms a slice in pydicom's decoder set-up (``DecodeRunner``, option and
  buffer validation, plugin lookup) to end in ``np.frombuffer`` on the Pixel Data bytes, which alone takes
  ~0.01 ms.  ``native_view`` does that last step itself, for exactly the case pydicom would handle the same
  way (see its conditions); every other slice still goes through pydicom (``decode_pixels``).
* ``rescale`` allocated five temporaries a slice (float copy, product, sum, two masks) and ``np.stack``
  then copied every slice once more into the volume: ~1.3 ms a slice plus a second volume's worth of
  memory.  ``rescale_into`` writes the HU of a slice straight into its plane of a preallocated
  ``(files, rows, cols)`` float32 volume (``SliceVolume``) with the same float32 operations in the same
  order (bit-identical), ~0.25 ms a slice; ``slice_stack`` then sorts those planes in place.
"""

from __future__ import annotations

import math
import mmap

import numpy as np
from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian

from lungcad.io.integrity import transfer_syntax

AIR_HU = -1000.0
PADDING_HU_BELOW = -1500.0  # physically impossible in a reconstructed CT: only padding is this low

_NATIVE_LITTLE_ENDIAN = (ExplicitVRLittleEndian, ImplicitVRLittleEndian)


def _int(ds: Dataset, keyword: str) -> int | None:
    """An Image Pixel module value as an int; None when absent or not a single number."""
    value = ds.get(keyword)
    if value is None or isinstance(value, str | bytes):
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def native_view(ds: Dataset) -> np.ndarray | None:
    """The stored values of a native single-frame 16-bit greyscale slice, (rows, cols); else None.

    The same array ``ds.pixel_array`` gives (pydicom 3), without its per-call set-up.  Taken only when
    every condition under which pydicom's native decoder reduces to ``np.frombuffer`` holds: transfer
    syntax Explicit or Implicit VR Little Endian (0002,0010), Pixel Data (7FE0,0010) and no float pixel
    data, BitsAllocated (0028,0100) 16, BitsStored (0028,0101) 1..16, PixelRepresentation (0028,0103) 0
    or 1, SamplesPerPixel (0028,0002) 1, PhotometricInterpretation (0028,0004) MONOCHROME1/2, Rows and
    Columns (0028,0010/0011) in 1..65535, NumberOfFrames (0028,0008) absent or 1, and at least
    ``rows * cols * 2`` bytes.  Like pydicom, BitsStored < 16 is corrected by shifting the unused high
    bits out and back (sign-extending signed data), and bytes past the image are ignored.  None means
    "ask pydicom", which then also raises the error a malformed module deserves.
    """
    if transfer_syntax(ds) not in _NATIVE_LITTLE_ENDIAN:
        return None
    if "FloatPixelData" in ds or "DoubleFloatPixelData" in ds:
        return None
    rows, cols = _int(ds, "Rows"), _int(ds, "Columns")
    stored, representation = _int(ds, "BitsStored"), _int(ds, "PixelRepresentation")
    if _int(ds, "BitsAllocated") != 16 or _int(ds, "SamplesPerPixel") != 1 or rows is None or cols is None:
        return None
    if stored is None or not 1 <= stored <= 16 or representation not in (0, 1):
        return None
    if not (0 < rows <= 65535 and 0 < cols <= 65535):
        return None
    if "NumberOfFrames" in ds and _int(ds, "NumberOfFrames") != 1:
        return None
    if str(ds.get("PhotometricInterpretation", "")) not in ("MONOCHROME1", "MONOCHROME2"):
        return None
    data = ds.get("PixelData")
    if not isinstance(data, bytes) or len(data) < rows * cols * 2:
        return None
    return stored_values(data, 0, rows, cols, stored, bool(representation))


def stored_values(
    data: bytes | bytearray, offset: int, rows: int, cols: int, bits_stored: int, signed: bool
) -> np.ndarray:
    """The (rows, cols) 16-bit stored values at ``data[offset:]``: a view, or a corrected copy.

    Like pydicom, BitsStored < 16 is corrected by shifting the unused high bits out and back
    (sign-extending signed data).
    """
    arr = np.frombuffer(data, dtype="<i2" if signed else "<u2", count=rows * cols, offset=offset)
    arr = arr.reshape(rows, cols)
    if bits_stored < 16:  # pydicom's correct_unused_bits, the default for native data
        arr = arr.copy()
        np.left_shift(arr, 16 - bits_stored, out=arr)
        np.right_shift(arr, 16 - bits_stored, out=arr)
    return arr


def rescale_into(
    arr: np.ndarray, slope: float, intercept: float, padding: float | None, out: np.ndarray
) -> int:
    """Stored values -> HU written into ``out`` (float32, ``arr``'s shape); padding -> air.

    Bit-identical to ``arr.astype(float32) * float32(slope) + float32(intercept)`` followed by air where
    HU < -1500 or ``arr == padding``: the same float32 operations in the same order, in place (a product
    with slope 1 is skipped: ``x * 1.0 == x`` exactly in IEEE arithmetic, -0.0 included).

    Returns:
        The number of padded pixels.
    """
    np.copyto(out, arr, casting="unsafe")
    if slope != 1.0:
        np.multiply(out, np.float32(slope), out=out)
    np.add(out, np.float32(intercept), out=out)
    pad = np.less(out, PADDING_HU_BELOW)
    if padding is not None:
        pad |= arr == padding
    np.copyto(out, np.float32(AIR_HU), where=pad)
    return int(np.count_nonzero(pad))


def rescale(arr: np.ndarray, slope: float, intercept: float, padding: float | None) -> tuple[np.ndarray, int]:
    """Stored values -> HU in a new float32 array; padding -> air.  Returns the HU and the padded count."""
    hu = np.empty(arr.shape, dtype=np.float32)
    return hu, rescale_into(arr, slope, intercept, padding, hu)


def untouched_volume(shape: tuple[int, ...]) -> np.ndarray:
    """An uninitialised float32 array in private anonymous memory that numpy does not mark for huge pages.

    Why not ``np.empty``: numpy asks for transparent huge pages (``madvise(MADV_HUGEPAGE)``) on every array
    of 4 MiB or more, and where the kernel's THP ``defrag`` setting is ``madvise`` (Debian/Ubuntu's default)
    a page fault in such an array may stall in direct memory compaction.  Measured in fresh processes on a
    busy 2-core machine: filling a 600 x 512 x 512 float32 volume took 0.36-1.4 s CPU that way against a
    steady 0.29-0.33 s with ordinary 4 KiB pages; ``load_ct`` of the 600-slice thin series took 4.6-5.3 s
    wall with ``np.empty`` against 2.0-2.4 s with this, and of LIDC-IDRI-0001 0.32-1.05 s against
    0.41-0.54 s (3-4 interleaved runs each).  With free huge pages at hand they are faster: 0.01 against
    0.06 s CPU for 133 slices at best, and a process that loads series after series gets back the huge
    pages it freed (filling the thin series 0.12 against 0.40 s CPU from the second load on).  The fresh
    process (``lungcad detect``, the benchmark) and the stall are what this chooses for.
    Memory is the process's own (``MAP_PRIVATE``): a forked child that writes gets its own copy.
    """
    nbytes = 4 * math.prod(shape)
    if nbytes == 0 or not hasattr(mmap, "MAP_PRIVATE"):  # e.g. Windows: numpy's allocator then
        return np.empty(shape, dtype=np.float32)
    memory = mmap.mmap(-1, nbytes, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    return np.frombuffer(memory, dtype=np.float32).reshape(shape)


class SliceVolume:
    """A ``(n, rows, cols)`` float32 volume filled plane by plane as slices are decoded.

    Allocated at the first slice (``untouched_volume``: pages are only touched when written).  A slice of
    another shape gets no plane (``plane`` returns None); the caller keeps it as its own array, and the
    loader reports the mixed sizes as before.
    """

    def __init__(self, n: int) -> None:
        self.n = n
        self.array: np.ndarray | None = None

    def plane(self, k: int, shape: tuple[int, ...]) -> np.ndarray | None:
        """Plane ``k`` as a writable view, or None when ``shape`` is not the volume's plane shape."""
        if self.array is None:
            if len(shape) != 2:
                return None
            self.array = untouched_volume((self.n, *shape))
        if tuple(shape) != self.array.shape[1:]:
            return None
        return self.array[k]


def gather_planes(volume: np.ndarray, order: list[int]) -> np.ndarray:
    """``volume[order]`` computed in place: the first ``len(order)`` planes, reordered; returns that view.

    ``order`` holds distinct plane indices.  Completed with the unused planes to a permutation of all
    planes and applied cycle by cycle through one spare plane, so sorting a 133-slice series costs at most
    one plane of extra memory instead of a second volume (``np.stack``).  Worked example: ``order
    [2, 0, 1]`` is one cycle: spare <- p0; p0 <- p2; p2 <- p1; p1 <- spare.
    """
    n = volume.shape[0]
    used = set(order)
    perm = list(order) + [i for i in range(n) if i not in used]
    spare: np.ndarray | None = None
    done = [False] * n
    for start in range(n):
        if done[start] or perm[start] == start:
            done[start] = True
            continue
        if spare is None:
            spare = np.empty_like(volume[0])
        spare[...] = volume[start]
        k = start
        while True:
            done[k] = True
            src = perm[k]
            if src == start:
                volume[k] = spare
                break
            volume[k] = volume[src]
            k = src
    return volume[: len(order)]
