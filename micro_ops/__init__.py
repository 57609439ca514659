"""Fused micro-ops for ttfuse: one package per op, each a set of static variant classes with
``golden`` (torch reference) and ``op`` (builds a ttnn.ProgramDescriptor and runs ttnn.generic_op).

Shared pieces: :mod:`micro_ops.common` (descriptor helpers) and :mod:`micro_ops.mock_device`
(tt-metal's mock Wormhole device plus the host compile check of every kernel). Importing this
package does not import ttnn, so the mock environment can be configured first.
"""
