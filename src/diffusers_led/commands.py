"""What every command line of the project shares: the argument parser, one-line errors and exit codes, and Ctrl-C.

* :class:`ArgumentParser` accepts each long option in both spellings (``--batch-size`` and ``--batch_size``), so the
  two families meet without surprises: ``led-edit``, ``led-evaluate`` and ``led-demo`` document dashes,
  ``led-prepare-data``, ``train_led.py`` and the scripts document underscores (as diffusers' training scripts do).
* :func:`report_errors` turns the failures a user can fix into ``<program>: error: <message>`` and exit code 1, Ctrl-C
  into 130, and anything unexpected into one line and exit code 2 (``LED_DEBUG=1`` shows the traceback).
* :func:`command` makes ``main(argv) -> exit code`` an entry point that never ends in a traceback or an abort.

Standard library only: a command can report a bad argument before torch is imported.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Sequence

__all__ = ["ArgumentParser", "CLIError", "command", "report_errors", "report_unexpected"]


class CLIError(Exception):
    """A failure reported as one line and a non-zero exit code."""


def _folded(option: str) -> str:
    return option.replace("_", "-")


class ArgumentParser(argparse.ArgumentParser):
    """An ``argparse.ArgumentParser`` whose long options also accept their other spelling: ``--batch_size`` for
    ``--batch-size``, ``--input-dir`` for ``--input_dir`` (also abbreviated, and as ``--option=value``). Help, usage
    and error messages show only the spelling each option was added with: the one a command documents."""

    def parse_known_args(self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None):
        args = sys.argv[1:] if args is None else list(args)
        return super().parse_known_args(self.documented_spellings(args), namespace)

    def documented_spellings(self, args: Sequence[str]) -> list[str]:
        """``args`` with every long option given in the other spelling replaced by the documented one."""
        documented = {_folded(option): option for option in self._option_string_actions if option.startswith("--")}
        out = list(args)
        for index, arg in enumerate(out):
            if arg == "--":  # what follows is positional
                break
            name, equals, value = arg.partition("=")
            if not name.startswith("--") or name in self._option_string_actions:
                continue
            folded = _folded(name)
            matches = [folded] if folded in documented else []
            if not matches and self.allow_abbrev:
                matches = [option for option in documented if option.startswith(folded)]
            if len(matches) == 1:  # else argparse reports the unknown or ambiguous option as it is
                out[index] = documented[matches[0]] + equals + value
        return out


def report_unexpected(program: str, error: Exception) -> int:
    """One line for an error no one expected (exit code 2); ``LED_DEBUG=1`` re-raises it for the traceback."""
    if os.environ.get("LED_DEBUG"):
        raise error
    print(
        f"{program}: error: unexpected {type(error).__name__}: {error} (run with LED_DEBUG=1 for the traceback and "
        "please report it).",
        file=sys.stderr,
    )
    return 2


def report_errors(
    program: str,
    run: Callable[[], int],
    errors: tuple[type[BaseException], ...],
    interrupted: str | None = None,
) -> int:
    """``run()``, with its failures reported as one line on stderr: ``errors`` (what the user can fix, e.g.
    ``ValueError``, ``OSError``) as ``<program>: error: <message>`` and exit code 1; Ctrl-C as ``<program>:
    interrupted; <interrupted>`` and 130 (re-raised when ``interrupted`` is ``None``); anything else by
    :func:`report_unexpected`."""
    try:
        return run()
    except errors as error:
        print(f"{program}: error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        if interrupted is None:
            raise
        print(f"{program}: interrupted; {interrupted}", file=sys.stderr)
        return 130
    except Exception as error:  # no traceback from deep inside torch / OpenCV for the user
        return report_unexpected(program, error)


@contextlib.contextmanager
def _interrupt_once() -> Iterator[None]:
    """Ctrl-C raises ``KeyboardInterrupt`` once; from then on Ctrl-C is ignored for the rest of the process, which is
    about to end (a second ``KeyboardInterrupt`` in the middle of the clean-up would print a traceback or leave a
    thread in native code at exit, and one arriving as the interpreter shuts down would kill it with SIGINT).
    Without an interrupt the previous handler is restored. Only in the main thread, where Python handles signals."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    interrupted = []

    def on_interrupt(signum, frame) -> None:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        interrupted.append(signum)
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGINT, on_interrupt)
    try:
        yield
    finally:
        if not interrupted:
            signal.signal(signal.SIGINT, previous)


def _print_any_file_name() -> None:
    """Let stdout and stderr print any file name: characters the console's encoding lacks (an emoji under cp1252) and
    the undecodable bytes of a file name (Latin-1 names on a UTF-8 system) are written as backslash escapes instead of
    raising ``UnicodeEncodeError`` in the middle of a run."""
    for stream in (sys.stdout, sys.stderr):
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")


def _wait_for_background_work() -> bool:
    """Wait for the face detector preload (see :func:`~diffusers_led.batch.preload_face_detector`): a thread still
    inside dlib's C++ code when the interpreter exits aborts the process. Returns whether Ctrl-C was pressed."""
    batch = sys.modules.get(f"{__package__}.batch")
    interrupted = False
    while batch is not None:
        try:
            batch.wait_for_preloads()
            break
        except KeyboardInterrupt:
            interrupted = True
    return interrupted


def command(
    program: str, errors: tuple[type[BaseException], ...] | None = None, interrupted: str | None = None
) -> Callable:
    """Make ``main(argv) -> exit code`` a command-line entry point that never ends in a traceback or an abort on
    Ctrl-C: one press (at any moment, also before ``main`` catches it) gives one line and exit code 130, more presses
    are ignored, and background threads are finished before returning. With ``errors``, ``main``'s failures are
    reported by :func:`report_errors` (``interrupted`` says what a Ctrl-C left behind)."""

    def decorate(main: Callable[[Sequence[str] | None], int]) -> Callable[[Sequence[str] | None], int]:
        @functools.wraps(main)
        def run(argv: Sequence[str] | None = None) -> int:
            _print_any_file_name()
            with _interrupt_once():
                code = None
                try:
                    if errors is None:
                        code = main(argv)
                    else:
                        code = report_errors(program, lambda: main(argv), errors, interrupted)
                except KeyboardInterrupt:
                    pass
                finally:
                    interrupted_now = _wait_for_background_work()
                if code is None or (interrupted_now and code != 130):
                    print(f"{program}: interrupted.", file=sys.stderr)
                    code = 130
                return code

        return run

    return decorate
