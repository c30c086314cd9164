"""Image versions pinned once in .env.example (shared with compose), as kustomize ImageTagTransformers."""

from __future__ import annotations

from pathlib import Path

from llmwatch.render.k8s.objects import SourceError, dump

# Image -> the .env.example variable that pins it.
IMAGE_PINS = {
    "llmwatch": "LLMWATCH_VERSION",
    "vllm/vllm-openai": "VLLM_VERSION",
    "ghcr.io/open-webui/open-webui": "OPEN_WEBUI_VERSION",
}


def pin(repo: Path, name: str) -> str:
    """The value .env.example gives ``name``."""
    for line in (repo / ".env.example").read_text().splitlines():
        if line.startswith(f"{name}="):
            return line.partition("=")[2]
    raise SourceError(f".env.example has no {name}; update llmwatch/render/k8s/images.py")


def images(repo: Path) -> str:
    """kustomize transformers that tag each image with its .env.example pin (vLLM, Open WebUI, the llmwatch image)."""
    transformers = [
        {
            "apiVersion": "builtin",
            "kind": "ImageTagTransformer",
            "metadata": {"name": name.rsplit("/", 1)[-1]},
            "imageTag": {"name": name, "newTag": pin(repo, variable)},
        }
        for name, variable in IMAGE_PINS.items()
    ]
    return dump(transformers, ".env.example (" + ", ".join(IMAGE_PINS.values()) + ")")
