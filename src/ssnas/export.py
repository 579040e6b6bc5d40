"""Export a (retrained) network for use outside ssnas.

Two formats:

* `torchscript`: the network in eval mode, traced with `torch.jit.trace` at a fixed
  input size and saved with `torch.jit.save`. It loads with plain PyTorch, no ssnas:

      import torch
      model = torch.jit.load("net.ts")          # eval mode, CPU
      logits = model(x)                          # x: (B, 3, 32, 32) float, CIFAR-normalised

  Inputs must be normalised as in training (`ssnas.data.views.CIFAR_MEAN/STD`) and have
  the traced height and width (`resolution` in the sidecar); the batch size is free.
* `state_dict`: `torch.save(model.state_dict())` to `out` plus a JSON sidecar
  `out.json` with arch, space, space_args, build_args and num_classes. Rebuilding the
  module needs ssnas (`ssnas.export.load_exported(out)`); the weights alone load with
  `torch.load(out)`.

Either way the exported network is the inference network: no auxiliary head, no
drop-path. Every export writes the sidecar; it is what `load_exported` reads.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ssnas import __version__
from ssnas.errors import UserError
from ssnas.retrain import build_seeded, read_arch_text, read_model_file, resolve_space

FORMATS = ("torchscript", "state_dict")
_TOLERANCE = 1e-4  # max |traced - eager| logit difference accepted


def _inference_network(
    arch_text: str, space: str, checkpoint: str | Path | None, space_args: Mapping[str, Any], num_classes: int,
    seed: int,
) -> tuple[nn.Module, dict[str, Any]]:  # fmt: skip
    """The eval-mode network without auxiliary head, and its sidecar description."""
    arch_text = read_arch_text(arch_text)
    saved = read_model_file(checkpoint) if checkpoint is not None else None
    args = dict(saved["space_args"]) if saved is not None else dict(space_args)
    search_space, arch, args = resolve_space(space, arch_text, args)
    model = build_seeded(search_space, arch, seed, num_classes=saved["num_classes"] if saved else num_classes)
    resolution = 32
    if saved is not None:
        if space != saved["space"] or arch.key != saved["arch"]:
            raise UserError(
                f"{checkpoint} holds {saved['space']} architecture {saved['arch']!r}, not {space} {arch.key!r}"
            )
        num_classes, resolution = saved["num_classes"], saved.get("resolution", 32)
        model.load_state_dict({k: v for k, v in saved["state_dict"].items() if not k.startswith("auxiliary_head.")})
    description = {
        "arch": arch.key, "space": space, "space_args": args, "build_args": {"num_classes": num_classes},
        "num_classes": num_classes, "resolution": resolution, "ssnas_version": __version__,
    }  # fmt: skip
    return model.eval(), description


def export(
    arch_text: str,
    space: str,
    checkpoint: str | Path | None,
    format: str = "torchscript",
    out: str | Path = "model.ts",
    *,
    space_args: Mapping[str, Any] | None = None,
    num_classes: int = 10,
    seed: int = 0,
) -> dict[str, Any]:
    """Write the network of `arch_text` to `out` (and `out.json`); returns the sidecar payload.

    Args:
        checkpoint: a `model.pt` from `ssnas train` (or its run folder); None = freshly
            initialised weights (seeded), built with `space_args` and `num_classes`.
        format: "torchscript" (ssnas-free, traced in eval mode) or "state_dict".

    Raises:
        UserError: unknown format, unreadable checkpoint, or an architecture that differs from it.
    """
    if format not in FORMATS:
        raise UserError(f"unknown export format {format!r}; choose from: {', '.join(FORMATS)}")
    model, description = _inference_network(arch_text, space, checkpoint, space_args or {}, num_classes, seed)
    model = model.to(memory_format=torch.contiguous_format)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    description["format"] = format
    if format == "torchscript":
        size = description["resolution"]
        example = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(seed))  # (2,3,H,W)
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # torch >= 2.10 deprecates TorchScript; it still works
            traced = torch.jit.trace(model, example, check_trace=False)
            difference = (traced(example) - model(example)).abs().max().item()
            if not difference <= _TOLERANCE:
                raise UserError(
                    f"the traced {space} network differs from the original by {difference:.3g}; use --format state_dict"
                )
            torch.jit.save(traced, str(out))
        description["max_trace_difference"] = difference
    else:
        torch.save(model.state_dict(), out)
    sidecar = out.with_name(out.name + ".json")
    sidecar.write_text(json.dumps(description, indent=2))
    return {**description, "out": str(out), "sidecar": str(sidecar)}


def load_exported(path: str | Path) -> nn.Module:
    """Rebuild a `state_dict` export (weights at `path`, description at `path.json`); eval mode, CPU."""
    path = Path(path)
    sidecar = path.with_name(path.name + ".json")
    if not path.is_file() or not sidecar.is_file():
        raise UserError(f"need both {path} and its sidecar {sidecar}")
    description = json.loads(sidecar.read_text())
    if description.get("format") != "state_dict":
        raise UserError(f"{path} is a {description.get('format')} export; load it with torch.jit.load")
    search_space, arch, _ = resolve_space(description["space"], description["arch"], description["space_args"])
    model = search_space.build(arch, **description["build_args"])
    model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return model.eval()
