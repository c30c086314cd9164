"""Builds the llmwatch wheel with a copy of the stack's rule files inside the package (llmwatch/_shipped/<repo path>),
so `llmwatch doctor` knows the stack's default thresholds when installed from the wheel (the image), not only from a
checkout. Everything else about the package is in pyproject.toml; llmwatch.thresholds.shipped reads these copies.
"""

from __future__ import annotations

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
# The repository paths copied; the same names as llmwatch.thresholds.THRESHOLDS / ENGINE_SIZING_DEFAULTS.
SHIPPED = ("prometheus/rules/thresholds.yml", "prometheus/defaults/engine-sizing.yml")


class BuildPyWithRules(build_py):
    def run(self) -> None:
        super().run()
        for name in SHIPPED:
            target = Path(self.build_lib) / "llmwatch" / "_shipped" / name
            self.mkpath(str(target.parent))
            self.copy_file(str(ROOT / name), str(target))


setup(cmdclass={"build_py": BuildPyWithRules})
