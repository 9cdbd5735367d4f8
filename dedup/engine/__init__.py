"""The matching engine: normalise values, compute match keys, compare, apply rules, keep the index, find, scan.

Pure functions first (normalize, similarity, keys), then the modules that read and write the database (index,
finder, selectors, scan, not_duplicates). The review queue (dedup.review), the merge (dedup.merge) and the screens
(dedup.admin) use the engine; the engine uses none of them.
"""
