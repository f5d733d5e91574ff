"""TorchScript (script, trace, CPU-optimised) and ONNX export parity of ``LungUNet`` in fp32."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from lungcad.model import LungUNet, export_onnx, onnx_available, optimize_for_cpu, to_torchscript
from lungcad.model.export import OUTPUT_NAMES

PARITY_ATOL = 1e-4  # issue 6: max abs difference under 1e-4 in fp32
SHAPES = [(2, 1, 19, 23, 17), (1, 1, 33, 16, 9)]


@pytest.fixture(scope="module")
def model() -> LungUNet:
    """A tiny model with non-trivial batch-norm statistics, so that BN folding is really exercised."""
    torch.manual_seed(0)
    net = LungUNet(widths=(4, 8, 8, 8))
    for module in net.modules():
        if isinstance(module, torch.nn.BatchNorm3d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
            torch.nn.init.uniform_(module.weight, 0.5, 1.5)
            torch.nn.init.uniform_(module.bias, -0.5, 0.5)
    return net.eval()


def _assert_parity(expected: tuple[torch.Tensor, ...], got: tuple[torch.Tensor, ...]) -> None:
    assert len(got) == len(OUTPUT_NAMES)
    for name, e, g in zip(OUTPUT_NAMES, expected, got, strict=True):
        g = torch.as_tensor(g)
        assert g.shape == e.shape, name
        assert float((g - e).abs().max()) < PARITY_ATOL, name


@pytest.mark.parametrize("method", ["script", "trace", "optimized"])
def test_torchscript_parity_on_two_shapes(model: LungUNet, method: str) -> None:
    x0 = torch.rand(SHAPES[0])
    if method == "optimized":
        exported = optimize_for_cpu(model)
    else:
        exported = to_torchscript(model, method, example_input=x0)
    with torch.no_grad():
        for shape in SHAPES:  # the second shape is not the one traced: the graph must stay shape-generic
            x = torch.rand(shape)
            _assert_parity(tuple(model(x)), tuple(exported(x)))


def test_trace_without_example_is_rejected(model: LungUNet) -> None:
    with pytest.raises(ValueError, match="needs an example_input"):
        to_torchscript(model, "trace")
    with pytest.raises(ValueError, match="method must be 'script' or 'trace', got 'compile'"):
        to_torchscript(model, "compile")


@pytest.mark.slow  # ~10-20 s: torch.export tracing + ONNX translation
@pytest.mark.filterwarnings("ignore:.*LeafSpec.*:FutureWarning")  # inside torch.export
@pytest.mark.skipif(
    not onnx_available(), reason="onnx/onnxscript/onnxruntime not installed: pip install 'lungcad[export]'"
)
def test_onnx_parity_with_dynamic_shapes(model: LungUNet, tmp_path: Path) -> None:
    import onnxruntime as ort

    path = export_onnx(model, tmp_path / "unet.onnx")
    assert path.exists() and not (tmp_path / "unet.onnx.tmp").exists()
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [o.name for o in session.get_outputs()] == list(OUTPUT_NAMES)
    with torch.no_grad():
        for shape in SHAPES:
            x = torch.rand(shape)
            got = session.run(None, {"image": x.numpy()})
            assert all(isinstance(g, np.ndarray) for g in got)
            _assert_parity(tuple(model(x)), tuple(torch.from_numpy(g) for g in got))
