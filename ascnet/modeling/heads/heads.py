"""The heads of ASCNet: projection/predictor MLP (Figure 1), linear classifier (Table 1),
identity (retrieval features)."""
import torch
from torch import nn

from .build import HEAD_REGISTRY


@HEAD_REGISTRY.register()
class MLPHead(nn.Module):
    """Projection / predictor MLP of the supplementary's Figure 1.

    ``Linear(in_dim, hidden_dim) - BatchNorm1d(hidden_dim) - ReLU - Linear(hidden_dim, out_dim)``,
    as ``self.net`` (an ``nn.Sequential`` with exactly these four layers).

    Args:
        in_dim: input features D.
        out_dim: output features (256 in the paper).
        hidden_dim: hidden width (4096 in the paper).
    """

    def __init__(self, in_dim: int, out_dim: int = 256, hidden_dim: int = 4096) -> None:
        super().__init__()
        for name, v in (("in_dim", in_dim), ("out_dim", out_dim), ("hidden_dim", hidden_dim)):
            if int(v) < 1:
                raise ValueError(f"MLPHead {name} must be >= 1, got {v}.")
        self.in_dim, self.out_dim, self.hidden_dim = int(in_dim), int(out_dim), int(hidden_dim)
        self.net = nn.Sequential(
            nn.Linear(self.in_dim, self.hidden_dim),
            nn.BatchNorm1d(self.hidden_dim),
            nn.ReLU(inplace=True),
            nn.Linear(self.hidden_dim, self.out_dim),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, in_dim) -> (N, out_dim). Training mode needs N > 1 (BatchNorm1d)."""
        return self.net(x)


@HEAD_REGISTRY.register()
class LinearHead(nn.Module):
    """Classification head of Table 1: optional dropout, then ``Linear(in_dim, out_dim)``.

    Args:
        in_dim: input features D (512 for R3D18/R2Plus1D18, 1024 for S3DG).
        out_dim: number of classes.
        dropout_rate: dropout probability before the linear layer (0 = none).
    """

    def __init__(self, in_dim: int, out_dim: int, dropout_rate: float = 0.0) -> None:
        super().__init__()
        if not 0.0 <= float(dropout_rate) < 1.0:
            raise ValueError(f"MODEL.CLS_HEAD.DROPOUT_RATE must be in [0, 1), got {dropout_rate}.")
        self.in_dim, self.out_dim = int(in_dim), int(out_dim)
        self.dropout = nn.Dropout(dropout_rate) if dropout_rate > 0 else nn.Identity()
        self.fc = nn.Linear(self.in_dim, self.out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, in_dim) -> (N, out_dim) logits."""
        return self.fc(self.dropout(x))


@HEAD_REGISTRY.register()
class IdentityHead(nn.Module):
    """Returns the backbone features unchanged (video retrieval); ``out_dim = in_dim``.

    Args:
        in_dim: input features D.
        out_dim: ignored unless given and different from ``in_dim`` (then an error).
    """

    def __init__(self, in_dim: int, out_dim: int = None, **unused) -> None:
        super().__init__()
        if out_dim is not None and int(out_dim) != int(in_dim):
            raise ValueError(f"IdentityHead keeps the dimension: out_dim ({out_dim}) must equal in_dim ({in_dim}).")
        self.in_dim = self.out_dim = int(in_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, in_dim) -> (N, in_dim)."""
        return x
