"""PrepareExpertWeights micro-op: MoE routing weights [..., K] -> [K, 1, BS, H] in one program.

``prepare_expert_weights(input_tensor, K, H, *, variant="auto", memory_config=None)`` is the device
entry point (``.golden`` / ``.output_shape`` attached); the variant classes expose ``golden`` and
``op``. See :mod:`micro_ops.prepare_expert_weights.op` for the contract and the kernels.
"""
from .op import (
    MAX_K,
    VARIANTS,
    PrepareExpertWeightsMultiCore,
    PrepareExpertWeightsPipelined,
    PrepareExpertWeightsSingleCore,
    build_descriptor,
    choose_variant,
    descriptor_cache,
    golden,
    last_descriptor,
    last_work_split,
    output_shape,
    prepare_expert_weights,
    validate,
)

__all__ = [
    "MAX_K",
    "VARIANTS",
    "PrepareExpertWeightsMultiCore",
    "PrepareExpertWeightsPipelined",
    "PrepareExpertWeightsSingleCore",
    "build_descriptor",
    "choose_variant",
    "descriptor_cache",
    "golden",
    "last_descriptor",
    "last_work_split",
    "output_shape",
    "prepare_expert_weights",
    "validate",
]
