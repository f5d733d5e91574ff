"""Validation and inference run on the model's device, under that device's autocast (issue 9, devices).

Only CPU here; a CUDA model gets CUDA windows and a CUDA autocast by the same helpers.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from lungcad.infer import sliding
from lungcad.infer.sliding import autocast_dtype, inference_autocast, model_device, predict_volume


class Spy(nn.Module):
    """A 4-output stand-in for the U-Net that records the device and autocast state of each window."""

    head_stride = 2

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(()))
        self.seen: list[tuple[str, bool, torch.dtype]] = []

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        kind = x.device.type
        self.seen.append((kind, torch.is_autocast_enabled(kind), torch.get_autocast_dtype(kind)))
        seg = x * self.scale
        head = nn.functional.avg_pool3d(seg, 2)
        return seg, head, head, head


def test_device_comes_from_the_model() -> None:
    assert model_device(nn.Linear(2, 2)).type == "cpu"
    assert model_device(nn.Linear(2, 2, device="meta")).type == "meta"
    assert model_device(lambda t: t).type == "cpu"  # an ONNX Runtime predictor: no parameters


def test_autocast_follows_the_device_type(monkeypatch: pytest.MonkeyPatch) -> None:
    assert autocast_dtype("cpu") is torch.bfloat16
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert autocast_dtype("cuda") is torch.float16  # pre-Ampere GPU
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert autocast_dtype("cuda") is torch.bfloat16
    cpu = inference_autocast(torch.device("cpu"), enabled=True)
    assert cpu.device == "cpu" and cpu.fast_dtype is torch.bfloat16


def test_predict_volume_uses_the_models_device_and_autocast(monkeypatch: pytest.MonkeyPatch) -> None:
    picked: list[str] = []
    real = sliding.inference_autocast

    def record(device: torch.device, enabled: bool) -> torch.autocast:
        picked.append(device.type)
        return real(device, enabled)

    monkeypatch.setattr(sliding, "inference_autocast", record)
    model = Spy()
    image = np.random.default_rng(0).random((20, 24, 24), dtype=np.float32)
    pred = predict_volume(model, image, patch_size=(16, 16, 16), overlap=0.25, bf16=True)
    assert picked == ["cpu"]
    assert model.seen and all(s == ("cpu", True, torch.bfloat16) for s in model.seen)
    assert isinstance(pred.segmentation, np.ndarray) and pred.segmentation.shape == image.shape
    assert pred.heatmap.shape == (10, 12, 12) and pred.heatmap.dtype == np.float32

    model.seen.clear()
    predict_volume(model, image, patch_size=(16, 16, 16), bf16=False)
    assert all(s[:2] == ("cpu", False) for s in model.seen)
