"""Feature-statistics filtering of synthetic images against the source distribution.

    stats.py     per-image channel statistics, the shrunk source Gaussian, Mahalanobis and Frechet distances
    features.py  one pass of the source model (and an optional other backbone) over a manifest
    rules.py     the checked `filter` settings; the distance band and consistency rules
    apply.py     the run: score, select, write kept.parquet and rejected.parquet
    report.py    histograms per condition, counts per condition, a contact sheet
"""
