"""Rewrite the report's figure goldens (``python -m tests.report.update_figures``).

Only for an intended change of a figure; look at the new PNGs in tests/report/golden/ before committing,
and say in the commit why they moved.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from tests.report.figure_cases import GOLDEN_DIR, golden_pixels, render_all


def main() -> int:
    GOLDEN_DIR.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        for name, path in render_all(Path(tmp)).items():
            new = golden_pixels(path)
            target = GOLDEN_DIR / f"{name}.png"
            if target.is_file():
                old = np.asarray(Image.open(target).convert("RGB"))
                diff = (
                    np.abs(old.astype(int) - new.astype(int)).mean()
                    if old.shape == new.shape
                    else float("inf")
                )
                print(f"{name}: mean absolute difference {diff:.2f}")
            else:
                print(f"{name}: new")
            Image.fromarray(new).save(target, optimize=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
