"""Immunology above the reaction network: the interleukin catalogue and motifs."""
