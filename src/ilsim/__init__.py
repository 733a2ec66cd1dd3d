"""ilsim: simulate interleukin signalling in the immune system.

The public API is this flat list; everything else lives in private-by-convention modules.
Its names are imported on first use (PEP 562), so ``import ilsim`` and ``ilsim --help`` do not load
SciPy, numba, xarray, pandas or matplotlib until a model is compiled or run.
"""

from importlib import import_module
from typing import TYPE_CHECKING

from ilsim import domain as _domain  # noqa: F401 - hands the domain layers' expansion to the compiler (ilsim/domain.py)
from ilsim._version import __version__ as __version__
from ilsim.errors import ExpressionError as ExpressionError
from ilsim.errors import IlsimError as IlsimError
from ilsim.errors import ModelError as ModelError
from ilsim.errors import SimulationError as SimulationError
from ilsim.model import spec as _spec

# public name -> (module, attribute)
_LAZY = {
    "cohort": ("ilsim.api", "cohort"),
    "fit": ("ilsim.fit", "package"),  # the package, callable: ilsim.fit(...) runs a fit
    "compare": ("ilsim.api", "compare"),
    "compile": ("ilsim.io.models", "compile"),  # not ilsim.api, which loads SciPy and xarray to run models
    "load": ("ilsim.io.models", "load"),
    "run": ("ilsim.api", "run"),
    "sensitivity": ("ilsim.api", "sensitivity"),
    "simulate": ("ilsim.api", "simulate"),
    "sweep": ("ilsim.api", "sweep"),
    "tissue": ("ilsim.api", "tissue"),
    "TissueEngine": ("ilsim.engines.tissue.engine", "TissueEngine"),
    "BatchEngine": ("ilsim.engines.batch", "BatchEngine"),
    "OdeEngine": ("ilsim.engines.ode", "OdeEngine"),
    "summarise": ("ilsim.io.results", "summarise"),
    "CompiledModel": ("ilsim.model.compile", "CompiledModel"),
    "ModelSpec": ("ilsim.model.spec", "ModelSpec"),
    "Model": ("ilsim.model.spec", "ModelSpec"),  # the name users reach for when building a model in Python
    "builtin_models": ("ilsim.scenarios", "builtin_names"),
}

__all__ = [
    "BatchEngine", "CompiledModel", "cohort", "compare", "ExpressionError", "IlsimError", "Model", "ModelError", "ModelSpec",
    "OdeEngine",
    "SimulationError", "__version__", "builtin_models", "compile", "load", "simulate", "summarise", "run",
    "sensitivity", "sweep", "fit", "tissue", "TissueEngine",
]


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module 'ilsim' has no attribute {name!r}")
    module, attribute = _LAZY[name]
    value = getattr(import_module(module), attribute)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


def _simulate(*args, **options):
    return __getattr__("simulate")(*args, **options)


_spec.set_simulate(_simulate)  # Model.simulate(...) is ilsim.simulate(model, ...)


if TYPE_CHECKING:  # what the names are, for type checkers and editors
    from ilsim.api import cohort, compare, compile, load, run, sensitivity, simulate, sweep  # noqa: F401
    from ilsim.engines.batch import BatchEngine  # noqa: F401
    from ilsim.engines.ode import OdeEngine  # noqa: F401
    from ilsim.io.results import summarise  # noqa: F401
    from ilsim.model.compile import CompiledModel  # noqa: F401
    from ilsim.model.spec import ModelSpec  # noqa: F401
    from ilsim.model.spec import ModelSpec as Model  # noqa: F401
    from ilsim.scenarios import builtin_names as builtin_models  # noqa: F401
