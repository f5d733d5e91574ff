"""Comparison with a prior scan: registration, nodule matching, interval change, doubling time, Lung-RADS.

The stage sits after ``evaluate`` and before ``train`` / ``report`` (the report renders a comparison):
``contract`` (the ``comparison.json`` document), ``schema`` (its published JSON Schema).
"""
