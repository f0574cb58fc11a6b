"""The path file parser: separators, quotes, header, blank lines, and errors that name the line."""

from __future__ import annotations

import pytest

from mkt_ray.attribution import ChannelPath, parse_path_lines, read_path_file
from mkt_ray.errors import InputError


def _parse(text: str) -> list[ChannelPath]:
    return parse_path_lines(text.splitlines(keepends=True), source="f")


def test_semicolon_file_with_header_and_blank_lines() -> None:
    text = "path;total_conversions;total_conversion_value;total_null\n\nA > B;2;19.5;3\n  \nC;0;0;4\n"
    assert _parse(text) == [ChannelPath(("A", "B"), 2.0, 19.5, 3.0), ChannelPath(("C",), 0.0, 0.0, 4.0)]


def test_comma_file_without_header_crlf_and_quotes() -> None:
    text = 'A>B > C,1,10,0\r\n"paid, search > email",1.5,"2,000.0"\r\n'
    with pytest.raises(InputError, match=r"f:2: expected 4 fields"):
        _parse(text)
    text = 'A>B > C,1,10,0\r\n"paid, search > email",1.5,"2000.0",0\r\n'
    assert _parse(text) == [ChannelPath(("A", "B", "C"), 1.0, 10.0, 0.0),
                            ChannelPath(("paid, search", "email"), 1.5, 2000.0, 0.0)]


def test_semicolon_wins_when_it_gives_four_fields_and_channels_may_hold_commas() -> None:
    assert _parse("a,b > c;1;2;3\n") == [ChannelPath(("a,b", "c"), 1.0, 2.0, 3.0)]
    assert _parse('"x;y" > z;1;2;3\n') == [ChannelPath(("x;y", "z"), 1.0, 2.0, 3.0)]


def test_header_only_on_the_first_content_line() -> None:
    assert _parse("\n\npath,conv,value,null\nA,1,1,1\n") == [ChannelPath(("A",), 1.0, 1.0, 1.0)]
    with pytest.raises(InputError, match=r"f:2: total_conversions is not a number: 'conv'"):
        _parse("A,1,1,1\npath,conv,value,null\n")


def test_quoted_field_spanning_lines_reports_the_line_it_ends_on() -> None:
    assert _parse('A;1;1;1\n"B\n > C";1;1;0\n') == [ChannelPath(("A",), 1.0, 1.0, 1.0),
                                                     ChannelPath(("B", "C"), 1.0, 1.0, 0.0)]
    with pytest.raises(InputError, match=r"f:3: total_null must be a finite number >= 0"):
        _parse('A;1;1;1\n"B\n > C";1;1;-1\nD;1;1;1\n')


@pytest.mark.parametrize(("text", "message"), [
    ("A > B;1;2\n", r"f:1: expected 4 fields"),
    ("A;1;2;3\nB;1;2;3;4\n", r"f:2: expected 4 fields .* got 5"),
    ("A;1;2;3\n\n;1;2;3\n", r"f:3: the path is empty"),
    ("A > > B;1;2;3\n", r"f:1: empty channel name"),
    ("A > ;1;2;3\n", r"f:1: empty channel name"),
    ("A;x;2;3\n", r"f:1: total_conversions is not a number: 'x'"),
    ("A;1;-2;3\n", r"f:1: total_conversion_value must be a finite number >= 0"),
    ("A;1;2;nan\n", r"f:1: total_null must be a finite number >= 0"),
    ("A;1;inf;0\n", r"f:1: total_conversion_value must be a finite number >= 0"),
])
def test_malformed_rows_name_their_line(text: str, message: str) -> None:
    with pytest.raises(InputError, match=message):
        _parse(text)


def test_empty_and_blank_files_have_no_paths(tmp_path) -> None:
    assert _parse("") == [] and _parse("\n \n") == []
    missing = tmp_path / "nope.txt"
    with pytest.raises(InputError, match="cannot read path file"):
        read_path_file(missing)
    latin = tmp_path / "latin.txt"
    latin.write_bytes(b"caf\xe9;1;1;1\n")
    with pytest.raises(InputError, match="not UTF-8"):
        read_path_file(latin)
    ok = tmp_path / "ok.csv"
    ok.write_text("path,total_conversions,total_conversion_value,total_null\nA > B,3,30,1\n")
    assert read_path_file(ok) == [ChannelPath(("A", "B"), 3.0, 30.0, 1.0)]
