"""Fused RMSNorm -> Matmul (one or two matmuls) in one program. See op.py."""
from .op import RMSNormDualMatmul, RMSNormMatmul, rms_norm_dual_matmul, rms_norm_matmul

__all__ = ["RMSNormDualMatmul", "RMSNormMatmul", "rms_norm_dual_matmul", "rms_norm_matmul"]
