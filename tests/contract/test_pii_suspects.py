"""pii_key_suspects: a cheap text test that must flag every metadata object the reference `has_pii_key` flags."""

from __future__ import annotations

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from mkt_ray.contract._rules import has_pii_key, pii_key_suspects
from mkt_ray.contract._schema import PII_NAMES

NAMES = sorted(PII_NAMES)
keys = st.one_of(
    st.sampled_from(NAMES).map(lambda n: "".join(c.upper() if i % 2 else c for i, c in enumerate(n))),
    st.sampled_from(NAMES).map(str.upper),
    st.sampled_from(NAMES).map(lambda n: n + "_hash"),  # not a PII key
    st.text(min_size=1, max_size=8),
)
values = st.recursive(
    st.one_of(st.none(), st.integers(), st.text(max_size=10), st.sampled_from(NAMES).map(lambda n: f'"{n}":')),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(keys, inner, max_size=3)),
    max_leaves=8,
)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.dictionaries(keys, values, max_size=4), min_size=1, max_size=20))
def test_flags_every_text_the_reference_flags(objects):
    texts = [msgspec.json.encode(o).decode() for o in objects]
    truth = [has_pii_key(o) for o in objects]
    flags = pii_key_suspects(texts).tolist()
    assert all(f for f, t in zip(flags, truth, strict=True) if t)
    if not any(truth) and not any(f'"{n}":' in t.lower() for n in NAMES for t in texts):
        assert not any(flags)


def test_exact_on_plain_metadata():
    texts = ['{"stage":"lead"}', '{"EMAIL":"x"}', '{"a":{"b":[{"Phone":1}]}}', '{"email_sha256":"ab"}', '{"ip":1}']
    assert pii_key_suspects(texts).tolist() == [False, True, True, False, True]
    assert pii_key_suspects(['{"stage":"lead"}', '{"x":"email"}']).tolist() == [False, False]
    assert pii_key_suspects([]).tolist() == []
