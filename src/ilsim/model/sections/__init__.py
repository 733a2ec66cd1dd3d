"""Schemas of the model-file sections that domain layers give meaning to, as plain data.

``motifs:`` (biology expands them), ``interleukins:`` and ``cell_types:`` (biology's catalogues),
``pk:``, ``doses:`` and ``patient:`` (therapy expands them), ``toxicity:`` (therapy grades it),
``population:`` (patients draw from it), ``plots:`` (the reports draw it) and ``tissue:`` (the tissue engine
runs it). They live beside ``ModelSpec``
so the model layer imports nothing above it; the domain modules re-export them under their old names.
"""
