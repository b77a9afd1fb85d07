"""A TimeSformer-style video transformer with divided space-time attention (Bertasius et al., 2021).

The body is a ViT (DeiT-S / ViT-S for ``timesformer_s``: patch 16, dim 384, 6 heads, 12 layers) built from
timm's layers: ``PatchEmbed``, ``Attention`` (``scaled_dot_product_attention`` inside), ``Mlp``,
``DropPath`` and timm's ViT weight init. Each block attends first over time (each patch position with
itself in the other frames: its own norm, qkv, projection, and a ``temporal_fc`` that starts at zero), then
over space (each frame's patches plus the class token, which is shared: it is copied into every frame and
averaged back), then applies the MLP. A learned temporal position embedding (zero at init) is added per
frame. With the temporal parts at their initial values the model is exactly a per-frame ViT, so 2D ViT
weights (``actnet.models.pretrained``) start it at a sensible point; names of the spatial parts are timm's.

Input ``(B, 3, T, H, W)`` with H and W multiples of the patch size; other sizes and frame counts than the
configured ones interpolate the position embeddings.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from timm.layers import DropPath, Mlp, PatchEmbed, resample_abs_pos_embed, trunc_normal_
from timm.models.vision_transformer import Attention, init_weights_vit_timm
from torch import nn


class DividedBlock(nn.Module):
    """Temporal attention, then spatial attention, then MLP; pre-norm residuals throughout."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0, drop_path: float = 0.0, attn_drop=0.0):
        super().__init__()
        self.temporal_norm = nn.LayerNorm(dim, eps=1e-6)
        self.temporal_attn = Attention(dim, num_heads, qkv_bias=True, attn_drop=attn_drop)
        self.temporal_fc = nn.Linear(dim, dim)
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, num_heads, qkv_bias=True, attn_drop=attn_drop)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), act_layer=nn.GELU)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def temporal(self, x: torch.Tensor) -> torch.Tensor:
        """The temporal residual for patch tokens ``x`` (B, T, N, D): each position attends over its T frames."""
        b, t, n, d = x.shape
        xt = x.transpose(1, 2).reshape(b * n, t, d)
        res = self.temporal_fc(self.temporal_attn(self.temporal_norm(xt)))
        return res.view(b, n, t, d).transpose(1, 2)

    def forward(self, cls: torch.Tensor, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        b, t, n, d = x.shape
        x = x + self.drop_path(self.temporal(x))
        tokens = torch.cat([cls.repeat_interleave(t, dim=0), x.reshape(b * t, n, d)], dim=1)  # (B*T, 1+N, D)
        res = self.attn(self.norm1(tokens))
        cls = cls + self.drop_path(res[:, :1].view(b, t, 1, d).mean(dim=1))
        x = x + self.drop_path(res[:, 1:].view(b, t, n, d))
        cls = cls + self.drop_path(self.mlp(self.norm2(cls)))
        x = x + self.drop_path(self.mlp(self.norm2(x)))
        return cls, x


class ConvStem(nn.Module):
    """A hybrid ViT's stem (the ViT paper's ResNet + ViT; Xiao et al. 2021, "Early convolutions help transformers
    see better"), in 3-D: a ``frames`` x 7 x 7 convolution at stride 2 with batch norm and ReLU, a 3 x 3 max-pool at
    stride 2 (the ResNet stem), then a linear ``patch/4`` x ``patch/4`` patchify to ``embed_dim``. Its tokens hold
    rectified local motion, which the tiny ViT could not learn from linear patches at 64 px (tools/motion_ladder.py).
    """

    def __init__(self, patch_size: int, embed_dim: int, width: int, frames: int = 5):
        super().__init__()
        if patch_size % 4 or frames < 1 or frames % 2 == 0:
            raise ValueError(f"a conv stem needs a patch size divisible by 4 and odd frames: {patch_size}, {frames}")
        self.conv = nn.Conv3d(3, width, (frames, 7, 7), stride=(1, 2, 2), padding=(frames // 2, 3, 3), bias=False)
        self.bn = nn.BatchNorm3d(width)
        self.pool = nn.MaxPool3d((1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1))
        k = patch_size // 4
        self.proj = nn.Conv3d(width, embed_dim, (1, k, k), stride=(1, k, k))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, T, H, W) -> (B*T, N, D), like PatchEmbed on the frames."""
        y = self.proj(self.pool(F.relu(self.bn(self.conv(x)))))  # (B, D, T, h, w)
        b, d, t = y.shape[:3]
        return y.flatten(3).permute(0, 2, 3, 1).reshape(b * t, -1, d)


class TimeSformer(nn.Module):
    def __init__(
        self,
        num_classes: int = 400,
        img_size: int = 224,
        num_frames: int = 8,
        patch_size: int = 16,
        embed_dim: int = 384,
        depth: int = 12,
        num_heads: int = 6,
        mlp_ratio: float = 4.0,
        drop_rate: float = 0.0,
        drop_path_rate: float = 0.0,
        conv_stem: int = 0,
        global_pool: str = "token",
    ):
        super().__init__()
        self.patch_size, self.img_size, self.num_frames = patch_size, img_size, num_frames
        self.grid = (img_size // patch_size, img_size // patch_size)
        self.conv_stem = conv_stem  # channels of a 3-D convolutional stem; 0: TimeSformer's linear 2-D patches
        if global_pool not in ("token", "avg"):
            raise ValueError(f"global_pool must be 'token' or 'avg', not {global_pool!r}")
        self.global_pool = global_pool  # token: the class token (TimeSformer); avg: the mean of every patch token
        if conv_stem:
            self.patch_embed = ConvStem(patch_size, embed_dim, conv_stem)
        else:
            self.patch_embed = PatchEmbed(img_size, patch_size, 3, embed_dim, strict_img_size=False)
        num_patches = self.grid[0] * self.grid[1]
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + num_patches, embed_dim))
        self.time_embed = nn.Parameter(torch.zeros(1, num_frames, embed_dim))
        self.pos_drop = nn.Dropout(drop_rate)
        rates = [drop_path_rate * i / max(1, depth - 1) for i in range(depth)]  # stochastic depth, linear
        self.blocks = nn.ModuleList(DividedBlock(embed_dim, num_heads, mlp_ratio, r) for r in rates)
        self.norm = nn.LayerNorm(embed_dim, eps=1e-6)
        self.num_features = embed_dim
        self.head_drop = nn.Dropout(drop_rate)
        self.head = nn.Linear(embed_dim, num_classes)
        self._init()

    def _init(self) -> None:
        trunc_normal_(self.pos_embed, std=0.02)
        nn.init.normal_(self.cls_token, std=1e-6)
        for name, module in self.named_modules():
            init_weights_vit_timm(module, name)
        for block in self.blocks:  # the temporal branch starts switched off: a per-frame ViT
            nn.init.zeros_(block.temporal_fc.weight)
            nn.init.zeros_(block.temporal_fc.bias)

    def no_weight_decay(self) -> set[str]:
        return {"pos_embed", "cls_token", "time_embed"}

    def _pos_embed(self, h: int, w: int) -> torch.Tensor:
        grid = (h // self.patch_size, w // self.patch_size)
        if grid == tuple(self.grid):
            return self.pos_embed
        return resample_abs_pos_embed(self.pos_embed, list(grid), list(self.grid), num_prefix_tokens=1)

    def _time_embed(self, t: int) -> torch.Tensor:
        if t == self.time_embed.shape[1]:
            return self.time_embed
        resized = F.interpolate(self.time_embed.transpose(1, 2), size=t, mode="linear", align_corners=False)
        return resized.transpose(1, 2)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        b, c, t, h, w = x.shape
        if h % self.patch_size or w % self.patch_size:
            raise ValueError(f"frame size {h}x{w} is not a multiple of the patch size {self.patch_size}")
        if self.conv_stem:
            patches = self.patch_embed(x)
        else:
            patches = self.patch_embed(x.transpose(1, 2).reshape(b * t, c, h, w))  # (B*T, N, D)
        pos = self._pos_embed(h, w)
        n, d = patches.shape[1], patches.shape[2]
        x = (patches + pos[:, 1:]).view(b, t, n, d) + self._time_embed(t)[:, :, None, :]
        cls = (self.cls_token + pos[:, :1]).expand(b, -1, -1)
        x, cls = self.pos_drop(x), self.pos_drop(cls)
        for block in self.blocks:
            cls, x = block(cls, x)
        if self.global_pool == "avg":
            return self.norm(x.mean(dim=(1, 2)))
        return self.norm(cls)[:, 0]

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        return self.head(self.head_drop(features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))
