"""Every command accepts each long option in both spellings (``--batch-size`` and ``--batch_size``) with the same
result, while its help shows only the one spelling it documents (diffusers_led.commands.ArgumentParser)."""

from __future__ import annotations

import argparse
import re
import runpy
import sys
from pathlib import Path

import pytest

from diffusers_led import cli
from diffusers_led.commands import ArgumentParser
from diffusers_led.demo import app as demo
from diffusers_led.text_encoder.install import build_install_parser

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = REPO / "scripts"
sys.path.insert(0, str(REPO))
import train_led  # noqa: E402


def _script_parser(name: str) -> argparse.ArgumentParser:
    """The parser of a script in scripts/ (run as a file, so its `if __name__ == "__main__"` does not start)."""
    return runpy.run_path(str(SCRIPTS / f"{name}.py"))["build_parser"]()


def _evaluate_parser(monkeypatch) -> argparse.ArgumentParser:
    """led-evaluate builds its parser inside its entry point: catch it on the way."""
    built = []

    class Recording(ArgumentParser):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            built.append(self)

    monkeypatch.setattr(cli, "ArgumentParser", Recording)
    with pytest.raises(SystemExit):
        cli.evaluate_main(["--help"])
    return built[0]


# (command, its parser, the arguments it requires, the spelling it documents)
COMMANDS = {
    "led-edit": (cli.build_edit_parser, ["photo.png"], "-"),
    "led-prepare-data": (cli.build_prepare_data_parser, ["--input_dir", "in", "--output_dir", "out"], "_"),
    "led-demo": (demo.build_parser, [], "-"),
    "train_led.py": (train_led.build_parser, ["--train_data_dir", "crops"], "_"),
    "install_text_encoder.py": (build_install_parser, [], "_"),
    "fetch_ckplus_sample.py": (lambda: _script_parser("fetch_ckplus_sample"), ["--output_dir", "o"], "_"),
    "fetch_real_photos.py": (lambda: _script_parser("fetch_real_photos"), ["--output_dir", "o"], "_"),
}


def _other_spelling(option: str) -> str:
    name = option[2:]
    return "--" + (name.replace("-", "_") if "-" in name else name.replace("_", "-"))


def _parses(parser: argparse.ArgumentParser, argv: list[str]) -> argparse.Namespace | None:
    try:
        return parser.parse_args(argv)
    except SystemExit:
        return None


def _check_both_spellings(parser: argparse.ArgumentParser, required: list[str], documented: str, capsys) -> int:
    """For every two-word long option: the other spelling gives the namespace the documented one gives, and only the
    documented one is in the help. Returns how many options were checked."""
    help_text = parser.format_help()
    checked = 0
    for action in parser._actions:
        for option in [o for o in action.option_strings if o.startswith("--") and re.search(r"\w[-_]\w", o[2:])]:
            assert ("-" if "-" in option[2:] else "_") == documented, (
                f"{parser.prog}: {option} is not documented style"
            )
            alias = _other_spelling(option)
            assert not re.search(re.escape(alias) + r"(?![\w-])", help_text), f"{parser.prog} --help lists {alias}"
            values = [[]] if action.nargs == 0 else [[str(v)] for v in (action.choices or ["3", "x", "0.5"])]
            for value in values:
                expected = _parses(parser, required + [option, *value])
                if expected is not None:
                    break
            assert expected is not None, f"{parser.prog}: found no value that {option} takes"
            assert _parses(parser, required + [alias, *value]) == expected, f"{parser.prog}: {alias} != {option}"
            if value:  # --option=value too
                assert _parses(parser, required + [f"{alias}={value[0]}"]) == expected
            checked += 1
    capsys.readouterr()
    return checked


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_each_command_accepts_both_spellings(name, capsys, monkeypatch):
    monkeypatch.syspath_prepend(str(SCRIPTS))  # fetch_real_photos.py imports fetch_ckplus_sample.py
    build, required, documented = COMMANDS[name]
    assert _check_both_spellings(build(), required, documented, capsys) > 0


def test_led_evaluate_accepts_both_spellings(monkeypatch, capsys):
    parser = _evaluate_parser(monkeypatch)
    assert _check_both_spellings(parser, ["--data", "d", "--out", "o"], "-", capsys) > 5


def test_aliases_are_resolved_like_the_documented_options():
    parser = cli.build_edit_parser()
    # An abbreviation of the other spelling, `--` ending the options, an unknown option left for argparse to refuse.
    assert parser.parse_args(["a.png", "--batch_s", "4"]).batch_size == 4
    assert parser.parse_args(["a.png", "--", "--batch_size"]).inputs == ["a.png", "--batch_size"]
    with pytest.raises(SystemExit):
        parser.parse_args(["a.png", "--no_such_option"])
    prepare = cli.build_prepare_data_parser()
    spelled = ["--input-dir", "in", "--output-dir", "out", "--crop-size", "32", "--allow-other-files"]
    assert prepare.parse_args(spelled) == prepare.parse_args(
        ["--input_dir", "in", "--output_dir", "out", "--crop_size", "32", "--allow_other_files"]
    )
