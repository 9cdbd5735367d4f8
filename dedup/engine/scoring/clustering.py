"""Groups of records in which every member is strongly linked to the group: one weak link never joins two.

Method: connected components over the pairs at or above the threshold, then, inside each component, average-
linkage agglomerative clustering: two clusters join only when the AVERAGE match probability over all their
cross pairs reaches a bar (the matcher uses 0.5, below its pair threshold: a member must be a likely match of
most of the group). Pairs never scored count as probability 0 (the caller scores every pair of a
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
from collections.abc import Callable, Iterable


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


def average_linkage(
    members: list[int], probabilities: dict[tuple[int, int], float], threshold: float,
    accept: Callable[[list[int], list[int]], bool] | None = None,
) -> list[list[int]]:
    """Split one component into clusters joined only while their average cross-pair probability >= threshold.

    ``probabilities`` maps (low, high) id pairs to match probabilities; a missing pair counts as 0.
    ``accept(cluster, other)``, when given, must also agree to a join (the matcher compares the two clusters'
    records pooled: the evidence of the whole group, not pair by pair).
    Returns the clusters of two or more members. Each join costs the two clusters' neighbour counts.
    """
    cluster_of = {member: index for index, member in enumerate(members)}
    clusters: dict[int, list[int]] = {index: [member] for index, member in enumerate(members)}
    # Sum of probabilities between neighbouring clusters, both directions.
    links: dict[int, dict[int, float]] = defaultdict(dict)
    for (left, right), value in probabilities.items():
        if left in cluster_of and right in cluster_of and value > 0:
            a, b = cluster_of[left], cluster_of[right]
            if a != b:
                links[a][b] = links[a].get(b, 0.0) + value
                links[b][a] = links[b].get(a, 0.0) + value
    # The strongest average joins first; an entry is stale once either cluster has grown.
    heap = [(-total, a, b, 1, 1)
            for a, near in links.items() for b, total in near.items() if a < b and total >= threshold]
    heapq.heapify(heap)
    while heap:
        _negative, a, b, size_a, size_b = heapq.heappop(heap)
        if a not in clusters or b not in clusters or len(clusters[a]) != size_a or len(clusters[b]) != size_b:
            continue
        if accept is not None and not accept(clusters[a], clusters[b]):
            continue
        clusters[a] = clusters[a] + clusters.pop(b)
        near_b = links.pop(b, {})
        near_a = links[a]
        near_a.pop(b, None)
        near_b.pop(a, None)
        for other, value in near_b.items():
            near_a[other] = near_a.get(other, 0.0) + value
            links[other].pop(b, None)
        for other, value in near_a.items():
            links[other][a] = value
            average = value / (len(clusters[a]) * len(clusters[other]))
            if average >= threshold:
                low, high = min(a, other), max(a, other)
                heapq.heappush(heap, (-average, low, high, len(clusters[low]), len(clusters[high])))
    return [sorted(members) for members in clusters.values() if len(members) > 1]
