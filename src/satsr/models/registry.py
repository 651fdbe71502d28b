"""Architecture registry (BasicSR's idea, without its weight): name -> builder and params section.

``build(arch, params)`` is how every stage gets a network. The names, params sections and builders
come from ``satsr.config.ARCHITECTURES`` (the one list, light enough for the CLI and params
validation); this module imports the builders it names, so adding an architecture means its model
file plus one entry there. ``PRESETS`` name the published (GPU) sizes; the defaults in params.yaml
are small CPU demo sizes.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any, NamedTuple

import keras
from pydantic import BaseModel

from satsr.config import (
    ARCHITECTURES,
    GAN_ARCH_NAMES,
    EDSRParams,
    ModelsParams,
    RDNParams,
    RRDNParams,
    SRGANParams,
)


class Arch(NamedTuple):
    builder: Callable[..., keras.Model]
    params: type[BaseModel]
    discriminator: Callable[..., keras.Model] | None = None


def _resolve(ref: str) -> Callable[..., keras.Model]:
    """``"module:function"`` -> the function (importing the module registers its custom layers)."""
    module, _, name = ref.partition(":")
    return getattr(importlib.import_module(module), name)


_ARCHS: dict[str, Arch] = {
    name: Arch(_resolve(spec.builder), spec.params, _resolve(spec.discriminator) if spec.discriminator else None)
    for name, spec in ARCHITECTURES.items()
}
ARCHS: tuple[str, ...] = tuple(_ARCHS)
#: Architectures trained adversarially; ``build`` returns their generator.
GAN_ARCHS: tuple[str, ...] = GAN_ARCH_NAMES


class Preset(NamedTuple):
    arch: str
    params: BaseModel


#: Published sizes for GPU hosts: ``build(*preset("edsr_baseline"))``.
PRESETS: dict[str, Preset] = {
    # Zhang et al. 2018, RDN "config B": 22,308,035 params at x3.
    "rdn_paper": Preset("rdn", RDNParams(D=16, C=8, G=64, G0=64)),
    # idealo ISR's 'gans' RRDN weights (rrdn-C4-D3-G32-G032-T10-x4): 4,170,031 params at x3.
    "rrdn_isr": Preset("rrdn", RRDNParams(T=10, D=3, C=4, G=32, G0=32, beta=0.2)),
    # Lim et al. 2017: 1,554,499 params at x3.
    "edsr_baseline": Preset("edsr", EDSRParams(num_blocks=16, num_filters=64)),
    # Lim et al. 2017: 43,680,003 params at x3.
    "edsr_large": Preset("edsr", EDSRParams(num_blocks=32, num_filters=256, res_scale=0.1)),
    # SRGAN with an EDSR-baseline generator and the paper's discriminator (64 filters, 4 stages, 1024).
    "srgan_edsr": Preset("srgan", SRGANParams(generator="edsr", num_blocks=16, num_filters=64,
                                              disc_filters=64, disc_stages=4, disc_dense=1024)),
    # The paper's SRResNet generator (16 blocks x 64, BN + PReLU).
    "srgan_srresnet": Preset("srgan", SRGANParams(generator="srresnet", num_blocks=16, num_filters=64,
                                                  disc_filters=64, disc_stages=4, disc_dense=1024)),
}


def _check_arch(arch: str) -> Arch:
    if arch not in _ARCHS:
        raise ValueError(f"unknown architecture {arch!r}; valid: {', '.join(ARCHS)}")
    return _ARCHS[arch]


def params_for(arch: str, params: Any = None) -> BaseModel:
    """The validated params section of ``arch``: from its section, the whole ``models`` section,
    a plain dict (validated here), or None for the defaults."""
    spec = _check_arch(arch)
    if params is None:
        return spec.params()
    if isinstance(params, ModelsParams):
        return getattr(params, arch)
    if isinstance(params, dict):
        return spec.params.model_validate(params)
    if not isinstance(params, spec.params):
        raise TypeError(f"{arch} needs {spec.params.__name__}, got {type(params).__name__}")
    return params


def build(arch: str, params: Any = None, channels: int = 3) -> keras.Model:
    """Build ``arch`` (one of ``ARCHS``) at x3 from its params section (see ``params_for``)."""
    spec = _check_arch(arch)
    return spec.builder(params_for(arch, params), channels=channels)


def build_discriminator(arch: str, params: Any = None, channels: int = 3) -> keras.Model:
    """The discriminator of a GAN architecture (one of ``GAN_ARCHS``)."""
    spec = _check_arch(arch)
    if spec.discriminator is None:
        raise ValueError(f"{arch!r} has no discriminator; GAN architectures: {', '.join(GAN_ARCHS)}")
    return spec.discriminator(params_for(arch, params), channels=channels)


def preset(name: str) -> Preset:
    """A named published size, as (arch, params)."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; valid: {', '.join(PRESETS)}")
    return PRESETS[name]
