"""Probabilistic identity matching inside the compiled walk (numpy and numba only).

An allowed event carrying privacy-safe signals (metadata values, coded per key) is compared with the
latest observation of each identity last seen with one of its signal values: a candidate of another
person, seen within `max_gap` ms, scores the summed weights of the signals both carry with equal values
over the weights' total. The best candidate at or above the threshold (ties: the most recent
observation) is linked to the event's person, unless both persons hold a `user_id` or the candidate's
person has no analytics consent. The event then becomes its first identity's observation.

A link is not a union: each side keeps a half-edge (other identity, its registration age, link time)
in a per-person list that merges like touchpoint lists. A conversion also credits the touchpoints of
the persons its half-edges reach, while the link is newer than (the person's newest time - lookback),
both persons do not hold a `user_id`, the other person has analytics consent, and the other identity is
not forgotten (its age changed or it is unregistered). Half-edges failing the first or last test are
dropped then: they can never count again.
"""

from __future__ import annotations

import numpy as np

from mkt_ray.attribution._unionfind import find_root
from mkt_ray.kernels._jit import jit

HAS_USER, OBS_SEQ, OBS_TS, L_HEAD, L_TAIL, L_COUNT = range(6)  # columns of `plink` (per identity slot)
OTHER, OTHER_AGE, LINK_TS, NEXT = range(4)  # columns of `lpool` (per half-edge)
LAST_NODE, LAST_AGE = range(2)  # columns of `last` (per signal value code)
PLINK_FILL = (0, -1, 0, -1, -1, 0)


@jit
def consented(root, consent_seq, consent_ok, consent_default):
    return consent_ok[root] == 1 if consent_seq[root] >= 0 else consent_default


@jit
def absorb_links(root, other, plink, lpool):
    """Join person `other`'s half-edges to `root`'s; `root` holds a user_id if either did."""
    if plink[other, L_COUNT] > 0:
        if plink[root, L_COUNT] == 0:
            plink[root, L_HEAD] = plink[other, L_HEAD]
        else:
            lpool[plink[root, L_TAIL], NEXT] = plink[other, L_HEAD]
        plink[root, L_TAIL] = plink[other, L_TAIL]
        plink[root, L_COUNT] += plink[other, L_COUNT]
    plink[root, HAS_USER] |= plink[other, HAS_USER]
    plink[other, HAS_USER], plink[other, L_HEAD], plink[other, L_TAIL], plink[other, L_COUNT] = 0, -1, -1, 0


@jit
def _add_half_edge(root, other, link_ts, age, plink, lpool, l_free, l_counters):
    if l_counters[1] > 0:
        l_counters[1] -= 1
        s = l_free[l_counters[1]]
    else:
        s = l_counters[0]
        l_counters[0] += 1
    lpool[s, OTHER], lpool[s, OTHER_AGE], lpool[s, LINK_TS], lpool[s, NEXT] = other, age[other], link_ts, -1
    if plink[root, L_COUNT] == 0:
        plink[root, L_HEAD] = s
    else:
        lpool[plink[root, L_TAIL], NEXT] = s
    plink[root, L_TAIL] = s
    plink[root, L_COUNT] += 1


@jit
def match_and_observe(root, first, seq, t, sig_row, weights, threshold, max_gap, parent, age, consent_seq,
                      consent_ok, consent_default, plink, obs_sig, last, lpool, l_free, l_counters):
    """Link the event's person `root` to its best candidate, then record the event as `first`'s observation."""
    total = 0.0
    for k in range(weights.shape[0]):
        total += weights[k]
    best, best_score, best_seq = -1, -1.0, -1
    for k in range(weights.shape[0]):
        code = sig_row[k]
        if code < 0:
            continue
        cand = last[code, LAST_NODE]
        if cand < 0 or parent[cand] < 0 or age[cand] != last[code, LAST_AGE] or plink[cand, OBS_SEQ] < 0:
            continue
        q = find_root(parent, cand)
        if q == root or abs(t - plink[cand, OBS_TS]) > max_gap:
            continue
        if (plink[root, HAS_USER] == 1 and plink[q, HAS_USER] == 1) or not consented(q, consent_seq, consent_ok,
                                                                                      consent_default):
            continue
        score = 0.0
        for kk in range(weights.shape[0]):
            if sig_row[kk] >= 0 and sig_row[kk] == obs_sig[cand, kk]:
                score += weights[kk]
        score /= total
        if score >= threshold and (score > best_score or (score == best_score and plink[cand, OBS_SEQ] > best_seq)):
            best, best_score, best_seq = cand, score, plink[cand, OBS_SEQ]
    if best >= 0:
        link_ts = max(t, plink[best, OBS_TS])
        _add_half_edge(root, best, link_ts, age, plink, lpool, l_free, l_counters)
        _add_half_edge(find_root(parent, best), first, link_ts, age, plink, lpool, l_free, l_counters)
    plink[first, OBS_SEQ], plink[first, OBS_TS] = seq, t
    for k in range(weights.shape[0]):
        obs_sig[first, k] = sig_row[k]
        if sig_row[k] >= 0:
            last[sig_row[k], LAST_NODE], last[sig_row[k], LAST_AGE] = first, age[first]


@jit
def linked_persons(root, floor, parent, age, consent_seq, consent_ok, consent_default, plink, lpool, l_free,
                   l_counters):
    """The distinct persons whose touchpoints a conversion of `root` shares now (see the module notes)."""
    out = np.empty(plink[root, L_COUNT], np.int64)
    n, prev, s = 0, -1, plink[root, L_HEAD]
    while s >= 0:
        following, other = lpool[s, NEXT], lpool[s, OTHER]
        if parent[other] < 0 or age[other] != lpool[s, OTHER_AGE] or lpool[s, LINK_TS] <= floor:
            if prev < 0:
                plink[root, L_HEAD] = following
            else:
                lpool[prev, NEXT] = following
            if plink[root, L_TAIL] == s:
                plink[root, L_TAIL] = prev
            plink[root, L_COUNT] -= 1
            l_free[l_counters[1]] = s
            l_counters[1] += 1
        else:
            q = find_root(parent, other)
            fresh = q != root and not (plink[root, HAS_USER] == 1 and plink[q, HAS_USER] == 1)
            fresh = fresh and consented(q, consent_seq, consent_ok, consent_default)
            for j in range(n):
                fresh = fresh and out[j] != q
            if fresh:
                out[n] = q
                n += 1
            prev = s
        s = following
    return out[:n]


@jit
def clear_links(slots, plink, lpool, l_free, l_counters):
    """Free the half-edges and observations of slots being forgotten; half-edges freed."""
    freed = 0
    for slot in slots:
        s = plink[slot, L_HEAD]
        for _ in range(plink[slot, L_COUNT]):
            l_free[l_counters[1]] = s
            l_counters[1] += 1
            s = lpool[s, NEXT]
        freed += plink[slot, L_COUNT]
        for col in range(plink.shape[1]):
            plink[slot, col] = PLINK_FILL[col]
    return freed
