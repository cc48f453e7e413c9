"""An evaluation's report: its schema (:mod:`.schema`, :func:`build_report`: the content of ``report.json``) and its
files (:func:`write_report`): ``report.json``, ``report.md`` (:mod:`.markdown`), ``edits.csv``, PNG plots
(:mod:`.plots`) and contact sheets (:mod:`.sheets`)."""

from .markdown import render_markdown
from .schema import build_report
from .sheets import write_contact_sheets
from .writer import write_report

__all__ = ["build_report", "render_markdown", "write_contact_sheets", "write_report"]
