"""`ssnas export`: TorchScript that loads without ssnas, and a state_dict + sidecar round trip."""

from __future__ import annotations

import json
import random
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from _labelled_folder import NB201_ARCH, make_labelled_folder

from ssnas.errors import UserError
from ssnas.export import export, load_exported
from ssnas.retrain import build_seeded, load_model, resolve_space, retrain
from ssnas.spaces import SPACES, create_space
from ssnas.spaces.darts import DARTS_V1, DARTS_V2

torch.set_num_threads(1)
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:DeprecationWarning")
TINY = {"nb201": {"C": 8, "N": 1}, "darts": {"C": 4, "layers": 5}, "hytra": {}}


@pytest.fixture(scope="module")
def darts_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A DARTS network (auxiliary head, drop-path) after two training steps on a tiny labelled folder."""
    root = tmp_path_factory.mktemp("export")
    data = make_labelled_folder(root / "data")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SSNAS_CACHE", str(root / "cache"))
        retrain(str(DARTS_V2), space="darts", data=str(data), epochs=1, batch_size=24, out_dir=root / "run",
                space_args=TINY["darts"], device="cpu", precision="fp32", progress=False)  # fmt: skip
    return root / "run"


def inputs(batch: int = 5) -> torch.Tensor:
    return torch.randn(batch, 3, 32, 32, generator=torch.Generator().manual_seed(1))  # (B,3,32,32)


def arch_of(space: str) -> str:
    texts = {"nb201": NB201_ARCH, "darts": str(DARTS_V2)}
    return texts.get(space) or create_space(space).sample(random.Random(0)).key


@pytest.mark.parametrize("space", sorted(TINY))
def test_torchscript_matches_the_network_at_any_batch_size(space: str, tmp_path: Path) -> None:
    payload = export(arch_of(space), space, None, "torchscript", tmp_path / "net.ts", space_args=TINY[space], seed=3)
    search_space, arch, _ = resolve_space(space, arch_of(space), TINY[space])
    original = build_seeded(search_space, arch, 3, num_classes=10).eval()
    loaded = torch.jit.load(str(tmp_path / "net.ts"))
    with torch.no_grad():
        for batch in (1, 5):
            assert torch.allclose(loaded(inputs(batch)), original(inputs(batch)), atol=1e-5)
    assert json.loads((tmp_path / "net.ts.json").read_text())["format"] == "torchscript" == payload["format"]


def test_torchscript_loads_without_ssnas(darts_run: Path, tmp_path: Path) -> None:
    """A fresh interpreter in which `import ssnas` would fail loads the file and gives the trained logits."""
    export(str(DARTS_V2), "darts", darts_run / "model.pt", "torchscript", tmp_path / "net.ts")
    torch.save(inputs(), tmp_path / "x.pt")
    script = textwrap.dedent(
        f"""
        import sys
        sys.modules["ssnas"] = None  # any import of ssnas now raises ImportError
        import torch
        model = torch.jit.load({str(tmp_path / "net.ts")!r})
        print(model(torch.zeros(2, 3, 32, 32)).shape)
        with torch.no_grad():
            torch.save(model(torch.load({str(tmp_path / "x.pt")!r})), {str(tmp_path / "y.pt")!r})
        assert not any(name.startswith("ssnas.") for name in sys.modules), "ssnas was imported"
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "torch.Size([2, 2])"
    with torch.no_grad():
        expected = load_model(darts_run)(inputs())
    assert torch.allclose(torch.load(tmp_path / "y.pt"), expected, atol=1e-5)


def test_state_dict_round_trip_drops_the_auxiliary_head(darts_run: Path, tmp_path: Path) -> None:
    payload = export(str(DARTS_V2), "darts", darts_run, "state_dict", tmp_path / "net.pt")
    state = torch.load(tmp_path / "net.pt", weights_only=True)  # plain tensors, no ssnas objects
    assert state and not any(k.startswith("auxiliary_head.") for k in state)
    sidecar = json.loads((tmp_path / "net.pt.json").read_text())
    assert sidecar["space_args"] == {"C": 4, "layers": 5, "steps": 4, "multiplier": 4} == payload["space_args"]
    assert sidecar["num_classes"] == 2
    rebuilt, trained = load_exported(tmp_path / "net.pt"), load_model(darts_run)
    assert rebuilt.auxiliary_head is None and not rebuilt.training
    with torch.no_grad():
        assert torch.equal(rebuilt(inputs()), trained(inputs()))


def test_checkpoint_of_another_architecture_is_refused(darts_run: Path, tmp_path: Path) -> None:
    with pytest.raises(UserError, match="holds darts architecture"):
        export(str(DARTS_V1), "darts", darts_run / "model.pt", "torchscript", tmp_path / "net.ts")


def test_bad_format_and_wrong_loader_are_user_errors(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="unknown export format 'tflite'"):
        export(NB201_ARCH, "nb201", None, "tflite", tmp_path / "net.tflite", space_args=TINY["nb201"])
    with pytest.raises(UserError, match="is a folder"):
        export(NB201_ARCH, "nb201", None, "onnx", tmp_path, space_args=TINY["nb201"])
    export(NB201_ARCH, "nb201", None, "torchscript", tmp_path / "net.ts", space_args=TINY["nb201"])
    with pytest.raises(UserError, match="torch.jit.load"):
        load_exported(tmp_path / "net.ts")
    with pytest.raises(UserError, match="model file not found"):
        export(NB201_ARCH, "nb201", tmp_path / "missing.pt", "torchscript", tmp_path / "other.ts")


def test_export_command(darts_run: Path, tmp_path: Path) -> None:
    command = [sys.executable, "-m", "ssnas.cli.main", "export", str(DARTS_V2), "--space", "darts",
               "--checkpoint", str(darts_run / "model.pt"), "--format", "state_dict", "--out", str(tmp_path / "net.pt")]  # fmt: skip
    done = subprocess.run([*command, "--json"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["sidecar"] == str(tmp_path / "net.pt.json")
    bad = subprocess.run([*command[:-1], str(tmp_path / "x.pt"), "--format", "tflite"], capture_output=True, text=True)
    assert bad.returncode == 2 and "tflite" in bad.stderr


@pytest.mark.parametrize("space", SPACES.names())
def test_onnx_matches_pytorch_under_onnxruntime_for_every_space(space: str, tmp_path: Path) -> None:
    onnxruntime = pytest.importorskip("onnxruntime")
    args = TINY.get(space, {})
    payload = export(arch_of(space), space, None, "onnx", tmp_path / "net.onnx", space_args=args, seed=3)
    assert payload["onnx_check"] == "onnxruntime" and payload["max_onnx_difference"] <= 1e-3
    search_space, arch, _ = resolve_space(space, arch_of(space), args)
    original = build_seeded(search_space, arch, 3, num_classes=10).eval()
    session = onnxruntime.InferenceSession(str(tmp_path / "net.onnx"), providers=["CPUExecutionProvider"])
    for batch in (1, 5):  # the batch size is free
        got = torch.from_numpy(session.run(None, {"images": inputs(batch).numpy()})[0])
        with torch.no_grad():
            assert torch.allclose(got, original(inputs(batch)), atol=1e-4)


def test_export_command_onnx(tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    done = subprocess.run([sys.executable, "-m", "ssnas.cli.main", "export", NB201_ARCH, "--space-arg", "C=8",
                           "--space-arg", "N=1", "--format", "onnx", "--out", str(tmp_path / "net.onnx"), "--json"],
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["onnx_check"] == "onnxruntime" and (tmp_path / "net.onnx").stat().st_size > 0
