"""``make golden-update``: recompute every golden output, print what changed, then rewrite the files.

Run it only for an intended change, and say in the commit why the outputs moved.  Real-data cases are kept
as they are when the data is absent.
"""

from __future__ import annotations

import json
import sys

from tests.conftest import real_data_root
from tests.golden.cases import CASES, compare, expected_path


def main() -> int:
    root = real_data_root()
    for case in CASES:
        if case.needs_real_data and not (root / "lidc").is_dir():
            print(f"{case.name}: real data absent at {root}, kept as it is")
            continue
        current = case.run(root)
        path = expected_path(case.name)
        if path.is_file():
            diffs = compare(json.loads(path.read_text()), current)
            print(f"{case.name}: " + ("unchanged within tolerance" if not diffs else "changed"))
            for d in diffs:
                print(f"  {d}")
        else:
            print(f"{case.name}: new")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(current, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
