"""Union-find over identity slots (numpy and numba only): the graph's links, shared by the walk.

A slot whose parent is -1 holds no registered identity. Registration stamps the slot with the next age;
a person's root is its oldest slot (union by age), so person ids do not depend on batching.
"""

from __future__ import annotations

import numpy as np

from mkt_ray.kernels._jit import jit


@jit
def find_root(parent, node):
    """The root of a registered slot, compressing its path."""
    root = node
    while parent[root] != root:
        root = parent[root]
    while parent[node] != root:
        following = parent[node]
        parent[node] = root
        node = following
    return root


@jit
def register(parent, age, clock, node):
    if parent[node] < 0:
        parent[node] = node
        age[node] = clock[0]
        clock[0] += 1
        return node
    return find_root(parent, node)


@jit
def link(parent, age, clock, nodes):
    """Register the slots of `nodes` (-1 = none) in order and join them under the oldest root; that root."""
    oldest = -1
    for node in nodes:
        if node >= 0:
            root = register(parent, age, clock, node)
            if oldest < 0 or age[root] < age[oldest]:
                oldest = root
    for node in nodes:
        if node >= 0:
            root = find_root(parent, node)
            if root != oldest:
                parent[root] = oldest
    return oldest


@jit
def members(parent, root):
    """Every registered slot whose root is `root`, root first (a scan: forget requests are rare)."""
    out = np.empty(parent.shape[0], np.int64)
    out[0] = root
    n = 1
    for slot in range(parent.shape[0]):
        if slot != root and parent[slot] >= 0 and find_root(parent, slot) == root:
            out[n] = slot
            n += 1
    return out[:n].copy()
