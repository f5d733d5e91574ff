"""Run the network through ONNX Runtime instead of PyTorch (``Detector(..., backend="onnx")``).

The model is exported once per ``Detector`` (``lungcad.model.export.export_onnx``, dynamic batch and
sides) into a temporary file and served by an ``InferenceSession`` on the CPU execution provider.
``benchmarks/bench_detect.py`` measures it against PyTorch fp32 and bf16 on the same scan.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import torch
from torch import nn

from lungcad.errors import InputError
from lungcad.model.export import export_onnx, onnx_available


class OnnxPredictor:
    """Callable ``(B, 1, D, H, W) tensor -> tuple of the four output tensors`` backed by ONNX Runtime."""

    def __init__(self, model: nn.Module, threads: int = 0) -> None:
        if not onnx_available():
            raise InputError(
                "ONNX Runtime backend needs onnx, onnxscript and onnxruntime",
                fix="pip install 'lungcad[export]'",
            )
        import onnxruntime as ort

        self._dir = tempfile.TemporaryDirectory(prefix="lungcad-onnx-")
        path = export_onnx(model, Path(self._dir.name) / "model.onnx")
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name
        self.head_stride = int(getattr(model, "head_stride", 2))

    def __call__(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        outs = self.session.run(None, {self.input_name: x.detach().float().contiguous().numpy()})
        return tuple(torch.from_numpy(o) for o in outs)
