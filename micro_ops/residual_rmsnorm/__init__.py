"""Residual add + RMSNorm, one program, two outputs (s, y). See op.py."""
from .op import ResidualRMSNormSingleCore, residual_rms_norm

__all__ = ["ResidualRMSNormSingleCore", "residual_rms_norm"]
