"""Sections of the models and their training: per-architecture builders (the registry), optimizer,
schedule, GAN phases, pretrain / finetune stages."""

from __future__ import annotations

from typing import Annotated, Any, Literal, NamedTuple

from pydantic import (
    Field,
    create_model,
    field_validator,
    model_validator,
)

from satsr.config.base import SCALE, PosInt, Strict
from satsr.config.data import InputParams

# --------------------------------------------------------------------------------------- models
# The defaults are SMALL CPU DEMO sizes: the default pipeline trains all four architectures on two
# CPU cores in minutes. Paper sizes for GPU hosts are named presets in satsr.models.registry.
KernelSize = Literal[3, 5, 7]
#: Global residual: the network predicts detail on top of the input upsampled x3 this way.
GlobalResidual = Literal["bicubic", "nearest", "none"]


class RDNParams(Strict):
    """Residual Dense Network (Zhang et al. 2018). Paper: D16 C8 G64 G0 64 (~22.3 M params)."""

    D: PosInt = 3  # CPU demo size; number of residual dense blocks
    C: PosInt = 3  # CPU demo size; conv layers per block
    G: PosInt = 16  # CPU demo size; growth rate (filters of each conv in a block)
    G0: PosInt = 16  # CPU demo size; filters of each block's output
    kernel_size: KernelSize = 3
    global_residual: GlobalResidual = "bicubic"


class RRDNParams(Strict):
    """idealo ISR's Residual-in-Residual Dense Network. ISR 'gans': T10 D3 C4 G32 G0 32."""

    T: PosInt = 2  # CPU demo size; number of RRDBs
    D: PosInt = 2  # CPU demo size; dense blocks per RRDB
    C: PosInt = 2  # CPU demo size; conv layers per dense block
    G: PosInt = 16  # CPU demo size
    G0: PosInt = 16  # CPU demo size
    beta: Annotated[float, Field(gt=0, le=1)] = 0.2
    kernel_size: KernelSize = 3
    global_residual: GlobalResidual = "bicubic"


class EDSRParams(Strict):
    """EDSR (Lim et al. 2017). Baseline 16 blocks x 64 filters; large 32 x 256, res_scale 0.1."""

    num_blocks: PosInt = 4  # CPU demo size
    num_filters: PosInt = 32  # CPU demo size
    res_scale: Annotated[float, Field(gt=0, le=1)] = 1.0
    kernel_size: KernelSize = 3
    global_residual: GlobalResidual = "bicubic"


class DetailParams(Strict):
    """The release model (satsr.models.detail): bicubic + alpha * a bias-free, radiometry-equivariant,
    low-frequency-constrained detail branch (EDSR-style trunk, ESPCN-style x3 tail)."""

    num_blocks: Annotated[int, Field(ge=1, le=64)] = 6
    num_filters: Annotated[int, Field(ge=4, le=512)] = 32
    #: The trunk sees LR - Gaussian(LR): no per-band level, so no dependence on the radiometry's offset.
    input_highpass_sigma: Annotated[float, Field(gt=0, le=16)] = 2.0
    #: The detail is high-passed: the SR keeps bicubic's low frequencies (SEN2SR's constraint).
    output_highpass_sigma: Annotated[float, Field(gt=0, le=16)] = 2.0
    kernel_size: KernelSize = 3


class SRGANParams(Strict):
    """SRGAN (Ledig et al. 2017): a generator plus the VGG-style discriminator.

    The generator is SRResNet (BN + PReLU, as in the paper) or EDSR-style (no BN, which avoids the
    BN artifacts GAN users complain about). The discriminator ends in global pooling, so it takes
    any patch size and gives one logit per image.
    """

    generator: Literal["srresnet", "edsr"] = "edsr"
    num_blocks: PosInt = 4  # CPU demo size (paper: 16)
    num_filters: PosInt = 32  # CPU demo size (paper: 64)
    res_scale: Annotated[float, Field(gt=0, le=1)] = 1.0  # EDSR generator only
    global_residual: GlobalResidual = "bicubic"
    disc_filters: PosInt = 16  # CPU demo size (paper: 64); doubles at every stage
    disc_stages: Annotated[int, Field(ge=1, le=6)] = 4  # stride-2 stages (paper: 4)
    disc_dense: PosInt = 128  # CPU demo size (paper: 1024)
    disc_batch_norm: bool = True


class ArchSpec(NamedTuple):
    """One architecture: the model of its ``models.<name>`` section, and its builder (and, for GAN
    architectures, its discriminator) as ``"module:function"``, imported by satsr.models.registry, so
    that this module needs no TensorFlow."""

    params: type[Strict]
    builder: str
    discriminator: str | None = None


#: THE architecture registry. Adding an architecture = its model file (satsr/models/<name>.py, with its
#: params class above), one entry here, and its params.yaml sections (``models``, ``pretrain``,
#: ``finetune``; list it in ``archs`` to train it). Every other list of names (the CLI's choices, the
#: per-architecture sections below, the tuner, dvc.yaml's ``foreach: ${archs}``) derives from it.
ARCHITECTURES: dict[str, ArchSpec] = {
    "rdn": ArchSpec(RDNParams, "satsr.models.rdn:rdn"),
    "rrdn": ArchSpec(RRDNParams, "satsr.models.rrdn:rrdn"),
    "edsr": ArchSpec(EDSRParams, "satsr.models.edsr:edsr"),
    "srgan": ArchSpec(SRGANParams, "satsr.models.srgan:generator", discriminator="satsr.models.srgan:discriminator"),
    "detail": ArchSpec(DetailParams, "satsr.models.detail:detail"),
}
ARCH_NAMES: tuple[str, ...] = tuple(ARCHITECTURES)
#: A registered architecture name (validation errors list the valid ones).
ArchName = Literal[ARCH_NAMES]  # type: ignore[valid-type]
#: Architectures trained adversarially (their registry entry names a discriminator).
GAN_ARCH_NAMES: tuple[str, ...] = tuple(a for a, spec in ARCHITECTURES.items() if spec.discriminator)


def _per_arch(name: str, doc: str, fields: dict[str, tuple[Any, Any]]) -> type[Strict]:
    """A section with one explicit field per registered architecture (so ``-S finetune.rdn.lr=1e-4``
    and unknown-key errors work as for any hand-written section)."""
    return create_model(name, __base__=Strict, __doc__=doc, __module__=__name__, **fields)


ModelsParams = _per_arch(
    "ModelsParams", "Architecture sizes, one section per architecture (see satsr.models.registry).",
    {arch: (spec.params, spec.params()) for arch, spec in ARCHITECTURES.items()})


# ------------------------------------------------------------------------------------- training
# Defaults are TINY CPU DEMO budgets: the default `dvc repro` pretrains and fine-tunes all four
# architectures on two CPU cores in a few minutes. Real runs raise epochs / steps_per_epoch / patch
# sizes (e.g. `dvc exp run -S finetune.rdn.epochs=200 -S finetune.rdn.steps_per_epoch=1000`).
class OptimizerParams(Strict):
    """Adam (Kingma & Ba) or AdamW (decoupled weight decay, Loshchilov & Hutter)."""

    name: Literal["adam", "adamw"] = "adam"
    betas: tuple[Annotated[float, Field(ge=0, lt=1)], Annotated[float, Field(ge=0, lt=1)]] = (0.9, 0.999)
    epsilon: Annotated[float, Field(gt=0)] = 1e-7
    #: AdamW only (decoupled decay); must be 0 with adam.
    weight_decay: Annotated[float, Field(ge=0)] = 0.0
    #: Clip each gradient to this L2 norm; null = no clipping.
    clipnorm: Annotated[float, Field(gt=0)] | None = None

    @model_validator(mode="after")
    def _decay_needs_adamw(self) -> OptimizerParams:
        if self.name == "adam" and self.weight_decay > 0:
            raise ValueError("weight_decay needs name: adamw (Adam has no decoupled weight decay)")
        return self


class ScheduleParams(Strict):
    """Learning-rate schedule over optimizer steps (global steps of the stage).

    ``constant``: lr. ``step``: lr * decay_rate ** (step // decay_steps). ``cosine``: from lr down to
    lr * decay_rate over decay_steps (null = the whole stage), then flat. ``warmup_steps`` ramps
    linearly from lr / warmup_steps up to the schedule's value first.
    """

    name: Literal["constant", "step", "cosine"] = "constant"
    decay_steps: PosInt | None = None
    decay_rate: Annotated[float, Field(ge=0, le=1)] = 0.5
    warmup_steps: Annotated[int, Field(ge=0)] = 0

    @model_validator(mode="after")
    def _step_needs_decay_steps(self) -> ScheduleParams:
        if self.name == "step" and self.decay_steps is None:
            raise ValueError("schedule 'step' needs decay_steps")
        return self


class GanPhase(Strict):
    """One phase of adversarial training (GAN architectures only), run for ``epochs`` epochs.

    Generator loss = pixel_weight * pixel + perceptual_weight * perceptual + adversarial_weight *
    adversarial. The discriminator is trained only in phases that use it (adversarial_weight > 0,
    or perceptual_weight > 0 with ``perceptual: disc_features``); a phase with only the pixel term
    is plain generator pretraining (SRResNet-style).
    """

    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]+$")]
    epochs: PosInt
    pixel_weight: Annotated[float, Field(ge=0)] = 1.0
    perceptual_weight: Annotated[float, Field(ge=0)] = 0.0
    adversarial_weight: Annotated[float, Field(ge=0)] = 0.0

    @model_validator(mode="after")
    def _some_weight(self) -> GanPhase:
        if self.pixel_weight == self.perceptual_weight == self.adversarial_weight == 0:
            raise ValueError(f"phase {self.name!r}: every loss weight is 0")
        return self

    @property
    def uses_gan(self) -> bool:
        return self.adversarial_weight > 0 or self.perceptual_weight > 0


#: Demo GAN schedule: 1 generator-only epoch, then adversarial epochs (the last phase runs until
#: ``epochs``; phases past ``epochs`` are not run).
DEFAULT_GAN_PHASES = (
    GanPhase(name="generator", epochs=1),
    GanPhase(name="gan", epochs=2, pixel_weight=1.0, perceptual_weight=0.1, adversarial_weight=1e-3),
)


class TrainStageParams(Strict):
    """One training stage (pretrain or finetune) of one architecture (satsr.train.trainer)."""

    epochs: PosInt = 3  # CPU demo budget
    steps_per_epoch: PosInt = 20  # CPU demo budget
    lr: Annotated[float, Field(gt=0, le=1)] = 5e-4
    schedule: ScheduleParams = ScheduleParams()
    optimizer: OptimizerParams = OptimizerParams()
    #: Pixel loss: l1 (EDSR/RDN practice) or mse; registered_l1 / registered_mse for real pairs: the
    #: best over integer HR shifts within +-loss_max_shift after per-band bias removal (WorldStrat's
    #: registered loss, PROBA-V cMSE; satsr.train.losses).
    loss: Literal["l1", "mse", "registered_l1", "registered_mse"] = "l1"
    #: Shift range of the registered losses, HR px (3 = one LR px); HR patches are cropped by it.
    loss_max_shift: Annotated[int, Field(ge=0, le=8)] = SCALE
    #: The input pipeline of this stage (satsr.data.pipeline); unlisted keys take InputParams' defaults.
    input: InputParams = InputParams(lr_patch=24, batch_size=8)  # CPU demo patch and batch
    #: Where fine-tuning (and its tuning trials) start: pretrain (models/pretrain/<arch>/model.keras),
    #: release (the committed released weights, weights/release; architecture `detail` only) or none
    #: (a fresh initialisation). `--init FILE` / `--no-init` on the command line win. Pretraining ignores it.
    init: Literal["pretrain", "release", "none"] = "pretrain"
    val_every_epochs: PosInt = 1
    #: Validate on at most this many images of the val split (in index order); null = all.
    val_images: PosInt | None = None
    #: GAN architectures only: the phases, in order (see GanPhase).
    gan: list[GanPhase] = list(DEFAULT_GAN_PHASES)
    #: Perceptual term of GAN phases: vgg19 (ImageNet VGG19 features; needs the weights in the Keras
    #: cache ~/.keras/models or network access) or disc_features (feature matching on the
    #: discriminator's activations: the OFFLINE alternative, and the demo default).
    perceptual: Literal["vgg19", "disc_features"] = "disc_features"
    #: VGG19 layer whose output is compared (block5_conv4 = SRGAN's phi_5,4).
    vgg_layer: str = "block5_conv4"
    #: standard (BCE, SRGAN) or relativistic (relativistic average GAN, ESRGAN).
    adversarial: Literal["standard", "relativistic"] = "relativistic"
    #: Discriminator learning rate (same schedule shape as the generator's).
    disc_lr: Annotated[float, Field(gt=0, le=1)] = 1e-4

    @model_validator(mode="after")
    def _loss_fits_patch(self) -> TrainStageParams:
        hr_patch = SCALE * self.input.lr_patch
        if self.loss.startswith("registered") and 2 * self.loss_max_shift >= hr_patch:
            raise ValueError(f"loss_max_shift {self.loss_max_shift} leaves nothing of the {hr_patch} px HR patch "
                             f"(input.lr_patch {self.input.lr_patch}); it must be below half the HR patch")
        return self

    @model_validator(mode="after")
    def _unique_phases(self) -> TrainStageParams:
        names = [p.name for p in self.gan]
        if len(set(names)) != len(names):
            raise ValueError(f"gan phase names must be unique, got {names}")
        if not self.gan:
            raise ValueError("gan needs at least one phase")
        return self

    def phase_at(self, epoch: int) -> GanPhase:
        """The GAN phase of 0-based ``epoch``: phases in order, the last one running until the end."""
        end = 0
        for phase in self.gan:
            end += phase.epochs
            if epoch < end:
                return phase
        return self.gan[-1]


#: Pretraining demo budget (natural images): 2 epochs x 15 steps, higher lr; SRGAN pretrains its
#: generator with the pixel loss only (adversarial training happens when fine-tuning).
_PRETRAIN = TrainStageParams(epochs=2, steps_per_epoch=15, lr=1e-3)
_PRETRAIN_GAN = TrainStageParams(epochs=2, steps_per_epoch=15, lr=1e-3,
                                 gan=[GanPhase(name="generator", epochs=2)])


#: One TrainStageParams per architecture: ``finetune.<arch>`` and ``pretrain.<arch>`` (pretraining defaults).
PerArch = _per_arch("PerArch", "One TrainStageParams per architecture (finetune).",
                    {arch: (TrainStageParams, TrainStageParams()) for arch in ARCH_NAMES})
PretrainPerArch = _per_arch(
    "PretrainPerArch", "One TrainStageParams per architecture, with the pretraining defaults.",
    {arch: (TrainStageParams, _PRETRAIN_GAN if arch in GAN_ARCH_NAMES else _PRETRAIN) for arch in ARCH_NAMES})


class TrainParams(Strict):
    """Settings shared by every training stage."""

    #: default: one device; mirrored: all local GPUs (MirroredStrategy); multi_worker:
    #: MultiWorkerMirroredStrategy across hosts, configured by the TF_CONFIG environment variable.
    strategy: Literal["default", "mirrored", "multi_worker"] = "default"
    #: auto = mixed_float16 when a GPU is present, float32 otherwise.
    mixed_precision: Literal["auto", "off", "mixed_float16", "mixed_bfloat16"] = "auto"
    checkpoint_every_epochs: PosInt = 1
    keep_checkpoints: PosInt = 2
    #: LR / bicubic / SR / HR crops figure, logged to MLflow.
    sample_every_epochs: PosInt = 1
    samples: Annotated[int, Field(ge=0, le=16)] = 3
    #: A NaN/inf loss: stop (keep the last good checkpoint) or rollback (restore the last good
    #: checkpoint, halve the learning rate and go on; at most max_rollbacks times, then stop).
    nan_policy: Literal["stop", "rollback"] = "stop"
    max_rollbacks: Annotated[int, Field(ge=0)] = 3
    #: Radiometric map of the LR (Landsat) reflectance to Sentinel-2 before the network, on the
    #: satellite (reflectance) stages: none | hls (HLS v2 OLI->MSI) | a YAML/JSON file with per-band
    #: gain/offset lists (satsr.models.harmonize). Saved in the model's "harmonize" layer, so predict
    #: applies the same map; natural-photo pretraining is left as is.
    harmonize: str = "none"

    @field_validator("harmonize")
    @classmethod
    def _harmonize_spec(cls, v: str) -> str:
        v = v.strip()
        if v.lower() in ("none", "hls"):
            return v.lower()
        if not v.lower().endswith((".yaml", ".yml", ".json")):
            raise ValueError(f"expected none, hls, or a .yaml/.yml/.json file with per-band gain and offset, got {v!r}")
        return v




def check_unique_archs(names: list[str], key: str) -> None:
    if not names:
        raise ValueError(f"{key} needs at least one architecture (registered: {', '.join(ARCH_NAMES)})")
    if len(set(names)) != len(names):
        raise ValueError(f"{key} must be unique, got {names}")
