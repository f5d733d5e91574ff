"""lungcad.model: the multi-task 3-D U-Net, its size coding, FLOP counting and export helpers."""

from lungcad.model.export import export_onnx, onnx_available, optimize_for_cpu, to_torchscript
from lungcad.model.flops import count_flops, flops_per_voxel
from lungcad.model.size_coding import SIZE_REFERENCE_MM, decode_diameter, encode_diameter
from lungcad.model.unet import LungUNet, UNetOutput

__all__ = [
    "SIZE_REFERENCE_MM",
    "LungUNet",
    "UNetOutput",
    "count_flops",
    "decode_diameter",
    "encode_diameter",
    "export_onnx",
    "flops_per_voxel",
    "onnx_available",
    "optimize_for_cpu",
    "to_torchscript",
]
