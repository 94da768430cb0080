"""EquiformerV2 encoder (LaMM-L): eSCN SO(2) convolutions, equivariant graph attention,
separable S2 activation and equivariant layer norm, in plain PyTorch."""

from lamm.models.equiformer_v2.encoder import EquiformerV2Encoder

__all__ = ["EquiformerV2Encoder"]
