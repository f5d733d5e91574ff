"""Comparison with a prior scan: registration, nodule matching, interval change, doubling time, Lung-RADS.

The stage sits after ``evaluate`` and before ``train`` / ``report`` (the report renders a comparison).
Modules: ``contract`` (the ``comparison.json`` document), ``schema`` (its published JSON Schema),
``sides`` (reading one side: scan + findings + lung mask, dates, patient check), ``registration``
(SimpleITK, lung region), ``matching`` (the assignment), ``growth`` (doubling time and its interval),
``compare`` (``compare_sides`` / ``compare_scans``: the one entry point of the CLI and the service).
See docs/compare.md.
"""
