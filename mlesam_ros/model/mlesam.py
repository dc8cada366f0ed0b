"""MLE-SAM: frozen SAM encoder + per-modality LoRA experts + routers + pyramid + two decoders."""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import nn

from mlesam_ros.modalities import PIXEL_MEAN, PIXEL_STD
from mlesam_ros.model.aux_head import MultiScaleMLPHead
from mlesam_ros.model.backbone import LoRABackbone
from mlesam_ros.model.config import MLESAMConfig
from mlesam_ros.model.decoder import SemanticMaskDecoder
from mlesam_ros.model.hiera import HieraFeaturePyramid, HieraLoRABackbone
from mlesam_ros.model.presets import get_preset
from mlesam_ros.model.pyramid import SimpleFeaturePyramid
from mlesam_ros.model.router import ModalityFusion


class MLESAM(nn.Module):
    """Multi-modal semantic segmentation from SAM; build it with ``build_mlesam``.

    ``forward(images, present)`` takes raw 0..255 images ``(B, M, 3, H, W)`` (or a dict
    ``{modality: (B, 3, H, W)}``) and ``present`` ``(B, M)`` bool, and returns a dict:
    ``logits`` (B, C, H, W) the fused output, ``mask_logits`` and ``aux_logits`` the two
    pathways (for auxiliary losses), and ``routing_weights`` (B, levels, M) for diagnostics.
    A modality marked absent has no influence on any output or gradient, whatever its pixels
    hold (NaN included), and in eager mode costs no encoder work; a sample with nothing present
    gets finite logits from all-zero features. ``forward`` is ``decode(encode(...))``.
    """

    def __init__(self, config: MLESAMConfig, encoder: nn.Module) -> None:
        """Wrap ``encoder``: SAM's ``ImageEncoderViT`` or SAM 2's ``ImageEncoder`` (per preset)."""
        super().__init__()
        preset = get_preset(config.preset)
        self.config = config
        # Provenance of the frozen weights ({"file", "fingerprint", "digest"}), by build_mlesam.
        self.sam_source: dict[str, object] | None = None
        mean = [PIXEL_MEAN[m] for m in config.modalities]
        std = [PIXEL_STD[m] for m in config.modalities]
        self.register_buffer("pixel_mean", torch.tensor(mean).reshape(1, -1, 3, 1, 1))
        self.register_buffer("pixel_std", torch.tensor(std).reshape(1, -1, 3, 1, 1))

        hiera = preset.family == "hiera"
        if hiera:
            self.backbone = HieraLoRABackbone(
                encoder.trunk, config.num_modalities, config.lora_rank, config.lora_alpha
            )
        else:
            self.backbone = LoRABackbone(
                encoder, config.num_modalities, config.taps, config.lora_rank, config.lora_alpha
            )
        for name, parameter in self.backbone.named_parameters():
            parameter.requires_grad_(config.train_encoder or ".lora_" in name)
        self.fusions = nn.ModuleList(
            ModalityFusion(dim, config.fusion, config.router_top_k, config.router)
            for dim in preset.stage_dims
        )
        # Hiera's stages are a pyramid already: SAM 2's FPN neck (trainable) makes the levels.
        self.pyramid = (
            HieraFeaturePyramid(encoder.neck)
            if hiera
            else SimpleFeaturePyramid(preset.embed_dim, config.pyramid_dim)
        )
        self.mask_decoder = SemanticMaskDecoder(
            num_classes=config.num_classes,
            transformer_dim=preset.out_chans,
            depth=preset.decoder_depth,
            mlp_dim=preset.decoder_mlp_dim,
            num_heads=preset.decoder_num_heads,
            pyramid_dim=config.pyramid_dim,
            num_prompt_tokens=config.num_prompt_tokens,
        )
        self.aux_head = MultiScaleMLPHead(
            config.pyramid_dim, config.aux_head_dim, config.num_classes
        )

    def stack_inputs(
        self, images: torch.Tensor | Mapping[str, torch.Tensor], present: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Turn a dict of per-modality images into the stacked tensor; default all present.

        A dict may leave modalities out: they are filled with zeros and marked absent.
        """
        if isinstance(images, Mapping):
            unknown = sorted(set(images) - set(self.config.modalities))
            if unknown:
                raise ValueError(
                    f"images: unknown modalities {', '.join(unknown)}; this model takes "
                    f"{', '.join(self.config.modalities)}"
                )
            if not images:
                raise ValueError("images: the dict is empty; give at least one modality")
            like = next(iter(images.values()))
            stacked = torch.stack(
                [images.get(m, torch.zeros_like(like)) for m in self.config.modalities], dim=1
            )
            given = torch.tensor(
                [m in images for m in self.config.modalities], device=like.device
            ).expand(like.shape[0], -1)
            present = given if present is None else present & given
            images = stacked
        if images.dim() != 5 or images.shape[1:3] != (self.config.num_modalities, 3):
            raise ValueError(
                f"images: expected (B, {self.config.num_modalities}, 3, H, W) for modalities "
                f"{', '.join(self.config.modalities)}, got {tuple(images.shape)}"
            )
        if present is None:
            present = torch.ones(images.shape[:2], dtype=torch.bool, device=images.device)
        return images, present.to(torch.bool)

    def set_normalization(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        """Set the per-modality input statistics, (M, 3) each in 0..255 units.

        They are buffers, so checkpoints and exported graphs carry them with the weights.
        """
        shape = (self.config.num_modalities, 3)
        mean, std = torch.as_tensor(mean), torch.as_tensor(std)
        if tuple(mean.shape) != shape or tuple(std.shape) != shape:
            raise ValueError(f"normalisation: mean and std must be {shape}, got "
                             f"{tuple(mean.shape)} and {tuple(std.shape)}")  # fmt: skip
        if not torch.isfinite(mean).all() or not (std > 0).all():
            raise ValueError("normalisation: mean must be finite and std > 0")
        self.pixel_mean.copy_(mean.reshape(self.pixel_mean.shape))
        self.pixel_std.copy_(std.reshape(self.pixel_std.shape))

    def encode(
        self, images: torch.Tensor, present: torch.Tensor | None = None
    ) -> list[torch.Tensor]:
        """Per-modality encoder taps, each (B, M, C, h, w), from raw images.

        ViT: four (embed_dim, H/16, W/16) block outputs; Hiera: the stage outputs at strides
        4, 8, 16 and 32.

        With ``present`` (B, M), absent images are replaced by zeros before the encoder, so
        NaN or inf in a dead sensor's pixels cannot reach a gradient (0 x NaN), and in eager
        mode the encoder skips them altogether (their taps are zeros; fusion ignores them).
        Traced/exported graphs always run every image, so their shapes stay static.
        """
        batch, modalities, _, height, width = images.shape
        normalised = (images - self.pixel_mean) / self.pixel_std
        if present is not None:
            keep = present.reshape(batch, modalities, 1, 1, 1)
            normalised = torch.where(keep, normalised, torch.zeros_like(normalised))
        # Modality-major batch: each LoRA expert's samples form one contiguous block.
        flat = normalised.transpose(0, 1).reshape(modalities * batch, 3, height, width)
        # Meta tensors (FLOP counting) hold no values to branch on: run every image.
        if present is not None and _eager() and present.device.type != "meta":
            rows = present.transpose(0, 1).reshape(-1)
            if not bool(rows.all()):
                taps = self._encode_rows(flat, rows, batch)
                return [t.reshape(modalities, batch, *t.shape[1:]).transpose(0, 1) for t in taps]
        taps = self.backbone(flat)
        return [tap.reshape(modalities, batch, *tap.shape[1:]).transpose(0, 1) for tap in taps]

    def _encode_rows(
        self, flat: torch.Tensor, rows: torch.Tensor, batch: int
    ) -> list[torch.Tensor]:
        """Encode only the ``rows`` of a modality-major batch; the others' taps are zero."""
        index = rows.nonzero().squeeze(1)
        preset = get_preset(self.config.preset)
        strides = (4, 8, 16, 32) if preset.family == "hiera" else (preset.patch_size,) * 4
        height, width = flat.shape[-2:]
        shapes = [
            (flat.shape[0], dim, height // stride, width // stride)
            for dim, stride in zip(preset.stage_dims, strides, strict=True)
        ]
        if index.numel() == 0:
            return [flat.new_zeros(shape) for shape in shapes]
        partial = self.backbone(flat[index], expert_ids=index // batch)
        taps = []
        for tap, shape in zip(partial, shapes, strict=True):
            full = tap.new_zeros(shape)
            taps.append(full.index_copy(0, index, tap))
        return taps

    def forward(
        self,
        images: torch.Tensor | Mapping[str, torch.Tensor],
        present: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """Segment one batch; see the class docstring for inputs and outputs."""
        images, present = self.stack_inputs(images, present)
        return self.decode(self.encode(images, present), present, images.shape[-2:])

    def decode(
        self, taps: list[torch.Tensor], present: torch.Tensor, size: tuple[int, int]
    ) -> dict[str, torch.Tensor]:
        """Fuse encoder ``taps`` over ``present`` and decode to ``size`` (H, W).

        Split from ``forward`` because an absent modality's taps are never used: evaluation
        encodes each frame once and decodes it for every modality subset.
        """
        fused, weights = [], []
        for fusion, tap in zip(self.fusions, taps, strict=True):
            features, level_weights = fusion(tap, present)
            fused.append(features)
            weights.append(level_weights)
        levels = self.pyramid(fused)
        if isinstance(self.pyramid, HieraFeaturePyramid):
            embedding = self.pyramid.image_embedding(levels)
        else:
            embedding = self.backbone.neck(fused[-1])
        mask_logits = self.mask_decoder(embedding, levels[0], levels[1])
        aux_logits = self.aux_head(levels)
        mask_logits = F.interpolate(mask_logits, size=size, mode="bilinear", align_corners=False)
        aux_logits = F.interpolate(aux_logits, size=size, mode="bilinear", align_corners=False)
        return {
            # Summing logits multiplies the pathways' (unnormalised) class probabilities.
            "logits": mask_logits + aux_logits,
            "mask_logits": mask_logits,
            "aux_logits": aux_logits,
            "routing_weights": torch.stack(weights, dim=1),
        }


def _eager() -> bool:
    """Tell whether the model runs eagerly (not traced, exported or compiled: static shapes)."""
    if torch.jit.is_tracing() or torch.jit.is_scripting() or torch.onnx.is_in_onnx_export():
        return False
    compiler = getattr(torch, "compiler", None)
    for check in ("is_compiling", "is_exporting"):
        if compiler is not None and getattr(compiler, check, lambda: False)():
            return False
    return True
