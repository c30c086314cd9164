"""`llmwatch doctor`: parse flags (or LLMWATCH_DOCTOR_* env), diagnose, print; exit 0 / 1 critical / 2 usage / 3."""

from __future__ import annotations

import sys

import httpx
from pydantic import ValidationError
from pydantic_settings import CliApp, SettingsError

from llmwatch.doctor.diagnose import diagnose
from llmwatch.doctor.prom import Prometheus, Unreachable
from llmwatch.doctor.render import as_json, as_text
from llmwatch.doctor.settings import DoctorSettings

USAGE, UNREACHABLE = 2, 3


def _usage_error(exc: Exception) -> str:
    """One line naming the flag."""
    if isinstance(exc, ValidationError):
        err = exc.errors()[0]
        flag = "--" + str(err["loc"][0]).replace("_", "-") if err["loc"] else "a flag"
        message = err["msg"].removeprefix("Value error, ")
        if err["type"] == "missing":
            message = "is required (or set LLMWATCH_DOCTOR_" + str(err["loc"][0]).upper() + ")"
        return f"llmwatch doctor: {flag} {message}"
    return f"llmwatch doctor: {str(exc).removeprefix('error parsing CLI: ')}"


def main(argv: list[str]) -> int:
    try:
        settings = CliApp.run(DoctorSettings, cli_args=argv)
    except (ValidationError, SettingsError) as exc:
        sys.stderr.write(_usage_error(exc) + "\n")
        return USAGE
    with httpx.Client(timeout=settings.timeout) as client:
        try:
            report = diagnose(Prometheus(settings.prometheus, client), settings.window)
        except Unreachable as exc:
            sys.stderr.write(f"llmwatch doctor: {exc}\n")
            return UNREACHABLE
    text = as_json(report) if settings.json else as_text(report, settings.prometheus, settings.window)
    sys.stdout.write(text + ("\n" if settings.json else ""))
    return report.exit_code
