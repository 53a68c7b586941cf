"""StyleGAN2 networks: mapping, synthesis, generator, discriminator, and their configs."""

from .config import ARCHITECTURES, CONFIG_E, CONFIG_F, DiscriminatorConfig, GeneratorConfig
from .discriminator import Discriminator, DiscriminatorBlock, DiscriminatorEpilogue
from .generator import Generator, num_trainable_params
from .mapping import MappingNetwork, truncate
from .synthesis import SynthesisBlock, SynthesisNetwork

__all__ = [
    "ARCHITECTURES", "CONFIG_E", "CONFIG_F", "GeneratorConfig", "DiscriminatorConfig", "Generator",
    "Discriminator", "DiscriminatorBlock", "DiscriminatorEpilogue", "MappingNetwork", "SynthesisNetwork",
    "SynthesisBlock", "truncate", "num_trainable_params",
]
