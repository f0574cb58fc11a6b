"""Arguments that cannot work are refused by the parser, with the argument named, before anything starts."""

from __future__ import annotations

import pytest

from mkt_ray.cli._main import main

CASES = [
    (["up", "--rate", "0"], "argument --rate: 0 must be a finite number above 0"),
    (["up", "--rate", "-5"], "argument --rate: -5 must be a finite number above 0"),
    (["up", "--rate", "inf"], "argument --rate: inf must be a finite number above 0"),
    (["up", "--rate", "nan"], "argument --rate: nan must be a finite number above 0"),
    (["up", "--rate", "fast"], "argument --rate: 'fast' is not a number"),
    (["up", "--max-events", "0"], "argument --max-events: 0 must be a finite number at least 1"),
    (["up", "--max-events", "1.5"], "argument --max-events: '1.5' is not an integer"),
    (["up", "--status-every", "0"], "argument --status-every: 0 must be a finite number above 0"),
    (["up", "--tenants", "acme,Globex"], "argument --tenants: tenant ids ['Globex'] do not match"),
    (["demo", "--input", "x.jsonl", "--tenants", "bad tenant"], "argument --tenants: tenant ids ['bad tenant'] do not match"),
    (["demo", "--input", "x.jsonl", "--tenants", "acme", "--hold", "-1"], "argument --hold: -1 must be a finite number at least 0"),
    (["demo", "--input", "x.jsonl", "--tenants", "acme", "--timeout", "0"], "argument --timeout: 0 must be a finite number above 0"),
    (["token", "acme", "admin", "--ttl", "0"], "argument --ttl: 0 must be a finite number at least 1"),
    (["generate", "--events", "10", "--out", "x.jsonl", "--tenants", ",acme,x" + "y" * 63],  # 64 characters
     f"argument --tenants: tenant ids ['{'x' + 'y' * 63}'] do not match"),
]


@pytest.mark.parametrize(("argv", "message"), CASES, ids=lambda v: " ".join(v) if isinstance(v, list) else None)
def test_unusable_arguments_exit_2_naming_the_argument(capsys, argv, message) -> None:
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert f"mkt-ray {argv[0]}: error: {message}" in err


@pytest.mark.parametrize("argv", [["up", "--rate", "0.5", "--max-events", "1", "--status-every", "0.1",
                                   "--tenants", "acme, globex-2,b_3"],
                                  ["demo", "--input", "x.jsonl", "--tenants", "acme", "--hold", "0", "--timeout", "1e3"]])
def test_usable_arguments_parse(argv) -> None:
    from mkt_ray.cli._main import _parser

    args = _parser().parse_args(argv)
    assert args.tenants in (["acme", "globex-2", "b_3"], ["acme"])


@pytest.mark.parametrize(("content", "message"), [
    (None, "cannot read {path}: No such file or directory"),
    (b"", "{path} is empty: nothing to produce"),
    (b"\n", None),  # one empty message: the pipeline quarantines it, so the demo runs
])
def test_demo_input_that_holds_no_messages_is_refused_before_anything_starts(tmp_path, capsys, content, message) -> None:
    from mkt_ray.cli._demo import read_messages

    path = tmp_path / "events.jsonl"
    if content is not None:
        path.write_bytes(content)
    if message is None:
        assert read_messages(path) == [b""]
        return
    assert main(["demo", "--input", str(path), "--tenants", "acme"]) == 2
    assert f"mkt-ray: error: {message.format(path=path)}" in capsys.readouterr().err


@pytest.mark.parametrize(("argv", "config", "verbose"), [
    (["--config", "a.yaml", "token", "acme", "admin"], "a.yaml", False),
    (["token", "acme", "admin", "--config", "b.yaml", "-v"], "b.yaml", True),
    (["-v", "--config", "a.yaml", "models", "list", "--config", "b.yaml"], "b.yaml", True),  # the later one stands
    (["demo", "--input", "x.jsonl", "--tenants", "acme"], None, False),
])
def test_config_and_verbose_are_taken_before_or_after_the_command(argv, config, verbose) -> None:
    from pathlib import Path

    from mkt_ray.cli._main import _parser

    args = _parser().parse_args(argv)
    assert args.config == (Path(config) if config else None) and args.verbose is verbose
