"""An evaluation's report: its schema (:mod:`.schema`, :func:`build_report`: the content of ``report.json``) and its
files (:func:`write_report`): ``report.json``, ``report.md`` (:mod:`.markdown`), ``edits.csv``, PNG plots
(:mod:`.plots`) and contact sheets (:mod:`.sheets`). Only files led-evaluate wrote itself are ever replaced
(:mod:`.files`)."""

from .files import ReportFiles, check_report_folder, report_file_names
from .markdown import render_markdown
from .schema import build_report
from .sheets import write_contact_sheets
from .writer import write_report

__all__ = [
    "ReportFiles",
    "build_report",
    "check_report_folder",
    "render_markdown",
    "report_file_names",
    "write_contact_sheets",
    "write_report",
]
