"""A model from whatever a user names: a YAML file, an SBML file, a built-in name, a spec or a compiled model.

``ilsim.load`` and ``ilsim.compile`` (``ilsim.api`` re-exports them); cohorts, sweeps, sensitivity
analyses and schedule searches start here too.
"""

from __future__ import annotations

from pathlib import Path

from ilsim import scenarios
from ilsim.errors import IlsimError, ModelError, Problem, did_you_mean
from ilsim.model.compile import CompiledModel, compile_model
from ilsim.model.load import read_spec, spec_from_dict
from ilsim.model.spec import ModelSpec


def load(model: str | Path) -> ModelSpec:
    """A model from a YAML file, an SBML file (``.xml``, ``.sbml``), or a built-in scenario by name (see ``ilsim scenarios``)."""
    text = str(model)
    path = Path(text)
    if path.suffix.lower() in (".xml", ".sbml"):
        from ilsim.io.sbml_import import read_sbml  # lazy: heavy (libsbml)

        return read_sbml(path)
    if not path.exists() and scenarios.builtin_path(text) is not None:
        path = scenarios.builtin_path(text)
    elif not path.exists() and path.suffix == "":
        hint = did_you_mean(text, scenarios.builtin_names())
        raise ModelError([Problem("", f"no such file or built-in model{hint}; `ilsim scenarios` lists the built-ins", text)])
    return read_spec(path)


def compile(model: str | Path | ModelSpec | CompiledModel, *, doses: list | None = None,  # noqa: A001 - the verb users expect
            allow_high_dose: bool = False, jit: bool | str | None = None) -> CompiledModel:
    """Check every name and expression of a model and build its kernels.

    ``doses`` (mappings with the fields of a model file's ``doses:`` entries) are added to the
    model's own; a dose above 100 times the labelled dose is refused unless ``allow_high_dose``.
    ``jit``: True compiles the kernels with numba from the start (a model run many times, as a server does),
    False never, "auto" (the default, ``ILSIM_JIT`` unset) as a run goes (``CompiledModel.run_kernels``).
    """
    if isinstance(model, CompiledModel):
        if doses:
            raise IlsimError("doses can be added to a model file or spec, not to a compiled model")
        return model
    source = None
    if not isinstance(model, ModelSpec):
        source = str(model) if Path(str(model)).exists() else f"builtin:{model}"
        model = load(model)
    if doses:
        data = model.model_dump(mode="json", exclude_defaults=True)
        data["doses"] = [*data.get("doses", []), *doses]
        model = spec_from_dict(data, source)
    return compile_model(model, source=source, allow_high_dose=allow_high_dose, jit=jit)
