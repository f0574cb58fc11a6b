"""The compiled timestamp parser against the contract's parser (msgspec's RFC 3339 reader + datetime arithmetic).

Whatever text the kernel accepts, the contract's parser accepts too and reads as the same millisecond; the
usual form is always accepted; anything else reaches the decoder's columns through the contract's parser.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from mkt_ray.contract._columns import INVALID_TS_MS, _epoch_ms, utf8_buffers
from mkt_ray.contract._rules import parse_timestamp
from mkt_ray.kernels.timestamps import parse_timestamps

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def kernel(texts: list[str]) -> tuple[list[int], list[bool]]:
    millis, ok = parse_timestamps(*utf8_buffers(texts))
    return millis.tolist(), ok.tolist()


def reference(text: str) -> int | None:
    """msgspec's reading of the text, then exact datetime arithmetic (floor of the microseconds)."""
    moment = parse_timestamp(text)
    return None if moment is None else (moment - EPOCH) // timedelta(milliseconds=1)


def test_closed_form_instants():
    texts = ["1970-01-01T00:00:00Z", "1969-12-31T23:59:59.9995Z", "2026-11-27T12:00:00+05:30",
             "2026-11-27T12:00:00.1-01:15", "2000-02-29T00:00:00.123456Z", "0001-01-01T00:00:00Z",
             "9999-12-31T23:59:59.999999-23:59"]
    millis, ok = kernel(texts)
    assert ok == [True] * len(texts)
    assert millis == [
        0,
        -1,  # floored, as epoch_ms does
        1_795_761_000_000,  # 2026-11-27T06:30:00Z
        1_795_785_300_100,  # 2026-11-27T13:15:00.1Z
        951_782_400_123,
        -62_135_596_800_000,
        253_402_300_799_999 + (23 * 60 + 59) * 60_000,
    ]
    assert millis == [reference(t) for t in texts]


def test_left_to_the_contract_parser():
    """Forms the kernel does not read; `_epoch_ms` gives the contract parser's answer for each."""
    texts = ["2026-11-27t10:00:00z", "2026-11-27 10:00:00Z", "2026-11-27T10:00:00+0530",
             "2026-11-27T10:00:00.9999996Z",  # 7 digits: msgspec rounds to the next second
             "2026-11-27T10:00:00.1234567891Z", "2026-11-27T10:00:00",  # no zone
             "2026-02-29T10:00:00Z", "1900-02-29T10:00:00Z", "2026-04-31T10:00:00Z", "2026-11-27T23:59:60Z",
             "2026-11-27T24:00:00Z", "2026-11-27T10:00:00+24:00", "2026-11-27T10:00:00+00:60",
             "0000-01-01T00:00:00Z", "2026-11-27T10:00:00.Z", "2026-11-27T10:00Z", "", "x", "２０２６-11-27T10:00:00Z"]
    _, ok = kernel(texts)
    assert not any(ok)
    expected = [reference(t) for t in texts]
    assert expected[:5] == [1_795_773_600_000, 1_795_773_600_000, 1_795_753_800_000, 1_795_773_601_000,
                            1_795_773_600_123]
    assert all(e is None for e in expected[5:])
    assert _epoch_ms(tuple(texts)).tolist() == [INVALID_TS_MS if e is None else e for e in expected]


@st.composite
def timestamp_texts(draw) -> str:
    """Mostly well-formed timestamps, with any field possibly out of range or misspelt."""
    year = draw(st.integers(0, 9999))
    parts = [f"{year:04d}", "-", f"{draw(st.integers(0, 13)):02d}", "-", f"{draw(st.integers(0, 32)):02d}",
             draw(st.sampled_from("TTTTt ")), f"{draw(st.integers(0, 24)):02d}", ":", f"{draw(st.integers(0, 60)):02d}",
             ":", f"{draw(st.integers(0, 61)):02d}"]
    digits = draw(st.integers(0, 8))
    if digits:
        parts.append("." + "".join(draw(st.lists(st.sampled_from("0123456789"), min_size=digits, max_size=digits))))
    zone = draw(st.sampled_from(["Z", "Z", "z", "+", "-", "", "+0000"]))
    if zone in "+-" and zone:
        zone += f"{draw(st.integers(0, 24)):02d}:{draw(st.integers(0, 60)):02d}"
    text = "".join(parts) + zone
    if draw(st.integers(0, 9)) == 0:  # one character replaced
        at = draw(st.integers(0, len(text) - 1))
        text = text[:at] + draw(st.sampled_from("0/:T-+Z.a ")) + text[at + 1 :]
    return text


@settings(max_examples=300, deadline=None)
@given(st.lists(timestamp_texts(), min_size=1, max_size=40))
def test_kernel_agrees_with_the_contract_parser(texts):
    millis, ok = kernel(texts)
    for text, value, accepted in zip(texts, millis, ok, strict=True):
        expected = reference(text)
        if accepted:
            assert expected == value, text
        elif len(text) <= 32 and text[10:11] == "T" and text[-1:] == "Z" and text.count(".") == 0:
            assert expected is None, text  # the usual form without a fraction: refused only when invalid
    assert _epoch_ms(tuple(texts)).tolist() == [INVALID_TS_MS if reference(t) is None else reference(t) for t in texts]


@settings(max_examples=200, deadline=None)
@given(st.datetimes(), st.integers(0, 6), st.integers(-(23 * 60 + 59), 23 * 60 + 59))
def test_usual_form_is_always_read(moment, digits, offset_min):
    """Every well-formed timestamp in the usual form is read by the kernel, not left to the slow path."""
    fraction = f".{moment.microsecond:06d}"[: digits + 1] if digits else ""
    sign, off = ("+" if offset_min >= 0 else "-"), abs(offset_min)
    zone = "Z" if offset_min == 0 and digits % 2 else f"{sign}{off // 60:02d}:{off % 60:02d}"
    text = moment.strftime("%Y-%m-%dT%H:%M:%S").rjust(19, "0") + fraction + zone
    if moment.year < 1000:
        text = f"{moment.year:04d}" + moment.strftime("-%m-%dT%H:%M:%S") + fraction + zone
    millis, ok = kernel([text])
    assert ok == [True], text
    assert millis == [reference(text)]
