"""Is every exporter on the path scraped? A target that is down blinds every check that reads it."""

from __future__ import annotations

from llmwatch.doctor.checks import queries as q
from llmwatch.doctor.checks.base import Check, ev
from llmwatch.doctor.context import ENGINE, GATEWAY, GPU, NODE, Context
from llmwatch.doctor.finding import Action, Finding


def target_down(ctx: Context) -> Finding | None:
    query = q.down(ctx.job(GATEWAY, ENGINE, GPU, NODE))
    down = ctx.prom.query(query)
    evidence = [ev(f"up{{job={s.labels.get('job')},instance={s.labels.get('instance')}}}", 0, query) for s in down]
    sim = ctx.value(q.SIM_COUNT)
    # The stack's default (1) is no fact about another deployment: only a series or a flag says a GPU is expected.
    expected = ctx.thresholds.get("threshold:gpus_expected:min")
    gpu_expected = expected is not None and expected.source in ("rule", "flag") and expected.value > 0
    if not ctx.scraped(GPU) and not sim and gpu_expected:
        evidence.append(ctx.evidence("gpus_expected", "threshold:gpus_expected:min"))
        evidence.append(ev("dcgm_targets", 0, q.targets(GPU)))
    if not evidence:
        return None
    names = sorted({e.name.split(",")[0].removeprefix("up{job=") for e in evidence if e.name.startswith("up{")})
    if any(e.name == "dcgm_targets" for e in evidence):
        names.append("dcgm (no target while a GPU is expected)")
    return Finding("target_down", "critical", f"Not scraped: {', '.join(names)}", evidence, Action(
        "Every check that reads these metrics is blind until they are back. Check `docker compose ps` and the "
        "service's logs; for dcgm-exporter the NVIDIA driver and container toolkit. A CPU-only engine sets "
        "GPUS_EXPECTED=0 in .env.",
    ))  # fmt: skip


TARGET_DOWN = Check("target_down", target_down)
