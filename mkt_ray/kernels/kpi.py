"""KPI kernels: grouped sums of event metrics. Pure functions over arrays; numpy and numba only."""

from __future__ import annotations

import numpy as np

from mkt_ray.kernels._jit import jit


@jit
def group_sums(group: np.ndarray, counts: np.ndarray, amounts: np.ndarray, out_counts: np.ndarray, out_amounts: np.ndarray) -> None:
    """Add each row's counts (int64, rows x k) and amounts (float64, rows x m) into its group's row.

    `group` holds a label code per row (-1 = skip). Rows are added in order, so float sums equal a
    plain left-to-right Python sum of the same rows.
    """
    for i in range(group.shape[0]):
        g = group[i]
        if g < 0:
            continue
        for j in range(counts.shape[1]):
            out_counts[g, j] += counts[i, j]
        for j in range(amounts.shape[1]):
            out_amounts[g, j] += amounts[i, j]
