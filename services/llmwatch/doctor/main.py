"""`llmwatch doctor`: parse flags (or LLMWATCH_DOCTOR_* env), diagnose, print; exit 0 / 1 critical / 2 usage / 3."""

from __future__ import annotations

import sys

import httpx

from llmwatch.config import parse_cli
from llmwatch.doctor.diagnose import diagnose
from llmwatch.doctor.render import as_json, as_text
from llmwatch.doctor.settings import DoctorSettings
from llmwatch.prom import Prometheus, Unreachable

UNREACHABLE = 3


def main(argv: list[str]) -> int:
    try:
        settings = parse_cli(DoctorSettings, argv)
    except SystemExit as exc:  # a usage error, already said in one line per problem (or --help)
        return int(exc.code or 0)
    with httpx.Client(timeout=settings.timeout) as client:
        try:
            diagnosis = diagnose(Prometheus(settings.prometheus, client), settings.window, settings.flags())
        except Unreachable as exc:
            sys.stderr.write(f"llmwatch doctor: {exc}\n")
            return UNREACHABLE
    text = as_json(diagnosis) if settings.json else as_text(diagnosis, settings.prometheus, settings.window)
    sys.stdout.write(text + ("\n" if settings.json else ""))
    return diagnosis.exit_code
