"""A fake dcgm-exporter for tests: the fields of the committed dcgm-exporter/counters.csv, in its wire format.

dcgm-exporter (NVIDIA/dcgm-exporter, 4.x, `pkg/dcgmexporter` text template) writes, per field of the counters file
and in its order, `# HELP <field> <help>` and `# TYPE <field> <type>` from the csv, then one sample per GPU with
the labels gpu, UUID, pci_bus_id, device, modelName, Hostname and DCGM_FI_DRIVER_VERSION. A counter keeps its
field name (no `_total`). The csv is read at run time, so fields added to it are served too. Values are whatever
the test sets (`set`), 0 otherwise; profiling fields (DCGM_FI_PROF_*) are left out for GeForce cards, as DCGM
does not support them there.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from tests.support import REPO, serving

COUNTERS = REPO / "dcgm-exporter" / "counters.csv"
DRIVER = "550.127.05"


@dataclass(frozen=True)
class Field:
    name: str
    type: str
    help: str


def counters(path: Path = COUNTERS) -> list[Field]:
    """The enabled fields of a dcgm-exporter counters file (dcgm-exporter's own csv rules: `#` comments, 3 columns)."""
    out = []
    for line in path.read_text().splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        name, kind, help_ = (part.strip() for part in line.split(",", 2))
        out.append(Field(name, kind, help_))
    return out


@dataclass
class Gpu:
    index: int = 0
    model: str = "NVIDIA H100 80GB HBM3"
    uuid: str = "GPU-5fd4a3a2-7b1e-4c55-9f0e-1d2c3b4a5e6f"
    hostname: str = "gpu-host"
    values: dict[str, float] = field(default_factory=dict)

    @property
    def labels(self) -> str:
        return (f'gpu="{self.index}",UUID="{self.uuid}",pci_bus_id="00000000:{self.index + 1:02X}:00.0",'
                f'device="nvidia{self.index}",modelName="{self.model}",Hostname="{self.hostname}",'
                f'DCGM_FI_DRIVER_VERSION="{DRIVER}"')  # fmt: skip


@dataclass
class FakeDcgm:
    """Serve GET /metrics on 127.0.0.1:``port`` until the context ends."""

    gpus: list[Gpu] = field(default_factory=lambda: [Gpu()])
    fields: list[Field] = field(default_factory=counters)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def set(self, gpu: int = 0, **values: float) -> None:
        with self.lock:
            self.gpus[gpu].values.update(values)

    def exposition(self) -> str:
        lines = []
        with self.lock:
            for f in self.fields:
                gpus = [g for g in self.gpus if not (f.name.startswith("DCGM_FI_PROF_") and "GeForce" in g.model)]
                if not gpus:
                    continue
                lines += [f"# HELP {f.name} {f.help}", f"# TYPE {f.name} {f.type}"]
                lines += [f"{f.name}{{{g.labels}}} {_number(g.values.get(f.name, 0))}" for g in gpus]
        return "\n".join(lines) + "\n"

    @contextlib.contextmanager
    def serve(self, port: int) -> Iterator[str]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path != "/metrics":
                    self.send_error(404)
                    return
                body = fake.exposition().encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        with serving(ThreadingHTTPServer(("127.0.0.1", port), Handler)) as url:
            yield url


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))
