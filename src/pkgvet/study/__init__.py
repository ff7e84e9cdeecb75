"""``pkgvet study``: the empirical study of Guo et al. (ASE 2023) reproduced on any dataset.

- :mod:`pkgvet.study.attrs` reads code attributes, capabilities, payload endpoints and a code
  fingerprint off a parsed package (in the scanning worker) into plain JSON;
- :mod:`pkgvet.study.facts` turns one record (a scan result's JSON dict plus those attributes)
  into the per-package facts of the study: behaviours, trigger point and location,
  anti-detection techniques, attack vectors;
- :mod:`pkgvet.study.aggregate` turns the facts of many packages into the study's tables;
- :mod:`pkgvet.study.dataset` finds the packages and their dates and scans them in a pool;
- :mod:`pkgvet.study.render` writes the CSV/JSON tables, the PNG plots and ``index.html``.

Aggregation is pure functions over JSON dicts, so a JSONL file of ``pkgvet scan -f jsonl`` or a
results database can feed it as well as a fresh scan.
"""
