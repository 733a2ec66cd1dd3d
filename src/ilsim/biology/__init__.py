"""Immunology above the reaction network: the interleukin catalogue, cell types and motifs."""

from ilsim.biology.catalogue import (
    EFFECT_KINDS,
    Catalogue,
    CatalogueFile,
    Effect,
    HalfLife,
    Interleukin,
    Therapeutic,
    builtin_catalogue,
    catalogue_from_dict,
    load_catalogue,
    read_catalogue,
)

__all__ = ["EFFECT_KINDS", "Catalogue", "CatalogueFile", "Effect", "HalfLife", "Interleukin", "Therapeutic",
           "builtin_catalogue", "catalogue_from_dict", "load_catalogue", "read_catalogue"]
