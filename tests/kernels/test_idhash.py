"""The compiled id hash is MurmurHash3 x64_128 (seed 0) of the UTF-8 bytes, bit for bit: the reference is the
mmh3 library (C), over every tail length, multi-byte characters and the empty text."""

from __future__ import annotations

import mmh3
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from mkt_ray.contract._columns import utf8_buffers
from mkt_ray.kernels.dedup import hash_texts


def kernel(texts: list[str]) -> list[tuple[int, int]]:
    return [(int(a), int(b)) for a, b in hash_texts(*utf8_buffers(texts)).view(np.uint64)]


def reference(texts: list[str]) -> list[tuple[int, int]]:
    return [mmh3.hash64(t.encode(), seed=0, x64arch=True, signed=False) for t in texts]


def test_every_length_up_to_three_blocks_and_a_known_value() -> None:
    texts = ["".join(chr(97 + (i * 7 + j) % 26) for j in range(n)) for i, n in enumerate(range(49))]
    assert kernel(texts) == reference(texts)
    assert kernel(["hello"]) == [(14688674573012802306, 6565844092913065241)]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(max_size=130), max_size=40))
def test_any_text_hashes_as_mmh3(texts: list[str]) -> None:
    texts = [t.encode("utf-8", "surrogatepass").decode("utf-8", "replace") for t in texts]  # encodable text
    assert kernel(texts) == reference(texts)
