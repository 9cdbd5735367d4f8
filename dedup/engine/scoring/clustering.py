"""Groups of records in which every member is strongly linked to the group: one weak link never joins two.

Method: connected components over the pairs at or above the threshold, then, inside each component, average-
linkage agglomerative clustering: two clusters join only when the AVERAGE match probability over all their
cross pairs reaches the threshold. Pairs never scored count as probability 0 (the caller scores every pair of a
small component first, so inside a usual group none is missing).

Why average linkage: union-find (single linkage) joins {A, B} and {C, D} through one pair B-C, which is how a
typo'd name or a shared switchboard chains strangers; complete linkage splits a true group of five when one old
record lacks a phone. With average linkage one link between two clusters of two weighs 1/4 and cannot join
them, while a record matching most of a group still joins it. It is also what a reader can check by hand:
"every member is linked, on average, to the rest of its group above the threshold".
"""
from __future__ import annotations

import heapq
from collections import defaultdict
from collections.abc import Iterable


def components(pairs: Iterable[tuple[int, int]]) -> list[list[int]]:
    """Return the connected components (sorted lists of ids, at least two each) of the given links."""
    parent: dict[int, int] = {}

    def find(item: int) -> int:
        root = item
        while parent.get(root, root) != root:
            root = parent[root]
        while parent.get(item, item) != root:
            parent[item], item = root, parent[item]
        return root

    for left, right in pairs:
        parent.setdefault(left, left)
        parent.setdefault(right, right)
        a, b = find(left), find(right)
        if a != b:
            parent[max(a, b)] = min(a, b)
    groups: dict[int, list[int]] = defaultdict(list)
    for item in parent:
        groups[find(item)].append(item)
    return [sorted(members) for members in groups.values() if len(members) > 1]


def average_linkage(members: list[int], probabilities: dict[tuple[int, int], float], threshold: float) -> list[list[int]]:
    """Split one component into clusters joined only while their average cross-pair probability >= threshold.

    ``probabilities`` maps (low, high) id pairs to match probabilities; a missing pair counts as 0.
    Returns the clusters of two or more members.
    """
    cluster_of = {member: index for index, member in enumerate(members)}
    clusters: dict[int, list[int]] = {index: [member] for index, member in enumerate(members)}
    # Sum of probabilities between two clusters (keyed low, high cluster id).
    sums: dict[tuple[int, int], float] = defaultdict(float)
    for (left, right), value in probabilities.items():
        if left in cluster_of and right in cluster_of and value > 0:
            a, b = cluster_of[left], cluster_of[right]
            sums[(min(a, b), max(a, b))] += value
    # The strongest average joins first; an entry is stale once either cluster has grown.
    heap = [(-total, a, b, 1, 1) for (a, b), total in sums.items() if total >= threshold]
    heapq.heapify(heap)
    while heap:
        _negative, a, b, size_a, size_b = heapq.heappop(heap)
        if a not in clusters or b not in clusters or len(clusters[a]) != size_a or len(clusters[b]) != size_b:
            continue
        merged = a  # keep a's id
        clusters[merged] = clusters[a] + clusters.pop(b)
        neighbours: dict[int, float] = defaultdict(float)
        for (x, y), value in list(sums.items()):
            if x in (a, b) or y in (a, b):
                other = y if x in (a, b) else x
                del sums[(x, y)]
                if other not in (a, b):
                    neighbours[other] += value
        for other, value in neighbours.items():
            key = (min(merged, other), max(merged, other))
            sums[key] = value
            average = value / (len(clusters[merged]) * len(clusters[other]))
            if average >= threshold:
                heapq.heappush(heap, (-average, key[0], key[1], len(clusters[key[0]]), len(clusters[key[1]])))
    return [sorted(members) for members in clusters.values() if len(members) > 1]
