"""Export a (retrained) network for use outside ssnas.

Three formats:

* `torchscript`: the network in eval mode, traced with `torch.jit.trace` at a fixed
  input size and saved with `torch.jit.save`. It loads with plain PyTorch, no ssnas:

      import torch
      model = torch.jit.load("net.ts")          # eval mode, CPU
      logits = model(x)                          # x: (B, 3, 32, 32) float, CIFAR-normalised

  Inputs must be normalised as in training (`ssnas.data.views.CIFAR_MEAN/STD`) and have
  the traced height and width (`resolution` in the sidecar); the batch size is free.
* `onnx`: the eval-mode network exported with the TorchScript-based ONNX exporter (opset
  17, input `images` (B,3,H,W) with a free batch size, output `logits`). When onnxruntime
  is installed (`pip install 'ssnas[onnx]'`) the file is run once and its logits compared
  with PyTorch's; the largest difference goes to the sidecar as `max_onnx_difference`:

      import onnxruntime
      session = onnxruntime.InferenceSession("net.onnx")
      logits = session.run(None, {"images": x.numpy()})[0]
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

from ssnas.version import __version__
from ssnas.errors import UserError
from ssnas.retrain import build_seeded, read_arch_text, read_model_file, resolve_space

FORMATS = ("torchscript", "onnx", "state_dict")
_TOLERANCE = 1e-4  # max |traced - eager| logit difference accepted
_ONNX_TOLERANCE = 1e-3  # max |onnxruntime - eager| logit difference accepted (kernels differ)
ONNX_OPSET = 17


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
    if Path(out).is_dir():
        raise UserError(f"--out {out} is a folder; give a file name")
    model, description = _inference_network(arch_text, space, checkpoint, space_args or {}, num_classes, seed)
    # the ignore: torch's `Module.to` overloads lack the memory_format keyword that it takes
    model = model.to(memory_format=torch.contiguous_format)  # type: ignore[call-overload]
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
    elif format == "onnx":
        description.update(_export_onnx(model, description["resolution"], out, space, seed))
    else:
        torch.save(model.state_dict(), out)
    sidecar = out.with_name(out.name + ".json")
    sidecar.write_text(json.dumps(description, indent=2))
    return {**description, "out": str(out), "sidecar": str(sidecar)}


def _export_onnx(model: nn.Module, size: int, out: Path, space: str, seed: int) -> dict[str, Any]:
    """Write `model` to `out` as ONNX; check it with onnxruntime when installed (UserError on mismatch)."""
    generator = torch.Generator().manual_seed(seed)
    example = torch.randn(2, 3, size, size, generator=generator)  # (2,3,H,W)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript-based exporter warns that it is deprecated; it works
        torch.onnx.export(
            model, (example,), str(out), dynamo=False, opset_version=ONNX_OPSET, input_names=["images"],
            output_names=["logits"], dynamic_axes={"images": {0: "batch"}, "logits": {0: "batch"}},
        )  # fmt: skip
    try:
        import onnxruntime
    except ImportError:
        return {"onnx_opset": ONNX_OPSET, "onnx_check": "not run: onnxruntime is not installed (pip install 'ssnas[onnx]')"}
    check = torch.randn(3, 3, size, size, generator=generator)  # (3,3,H,W): another batch size than exported
    session = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    got = torch.from_numpy(session.run(None, {"images": check.numpy()})[0])  # (3, classes)
    with torch.no_grad():
        difference = (got - model(check)).abs().max().item()
    if not difference <= _ONNX_TOLERANCE:
        out.unlink()
        raise UserError(f"the ONNX {space} network differs from PyTorch by {difference:.3g} under onnxruntime; "
                        "use --format torchscript")  # fmt: skip
    return {"onnx_opset": ONNX_OPSET, "onnx_check": "onnxruntime", "max_onnx_difference": difference}


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
