"""Immunology above the reaction network: the interleukin catalogue and motifs."""

# The catalogue is imported on first use: ilsim.model.spec imports ilsim.biology.motifs while it is
# still being defined, and the catalogue needs the finished spec module (its Reference model).
_CATALOGUE_NAMES = {
    "EFFECT_KINDS", "Catalogue", "CatalogueFile", "Effect", "HalfLife", "Interleukin", "Therapeutic",
    "builtin_catalogue", "catalogue_from_dict", "load_catalogue", "read_catalogue",
}


def __getattr__(name: str):
    if name in _CATALOGUE_NAMES:
        from ilsim.biology import catalogue

        return getattr(catalogue, name)
    raise AttributeError(f"module 'ilsim.biology' has no attribute {name!r}")
