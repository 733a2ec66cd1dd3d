"""ilsim: simulate interleukin signalling in the immune system.

The public API is this flat list; everything else lives in private-by-convention modules.
"""

from ilsim._version import __version__ as __version__
from ilsim.api import cohort as cohort
from ilsim.api import compare as compare
from ilsim.api import compile as compile
from ilsim.api import load as load
from ilsim.api import run as run
from ilsim.api import sensitivity as sensitivity
from ilsim.api import simulate as simulate
from ilsim.api import sweep as sweep
from ilsim.engines.batch import BatchEngine as BatchEngine
from ilsim.engines.ode import OdeEngine as OdeEngine
from ilsim.errors import ExpressionError as ExpressionError
from ilsim.errors import IlsimError as IlsimError
from ilsim.errors import ModelError as ModelError
from ilsim.errors import SimulationError as SimulationError
from ilsim.io.results import summarise as summarise
from ilsim.model.compile import CompiledModel as CompiledModel
from ilsim.model.spec import ModelSpec as ModelSpec
from ilsim.scenarios import builtin_names as builtin_models

Model = ModelSpec  # the name users reach for when building a model in Python

__all__ = [
    "BatchEngine", "CompiledModel", "cohort", "compare", "ExpressionError", "IlsimError", "Model", "ModelError", "ModelSpec",
    "OdeEngine",
    "SimulationError", "__version__", "builtin_models", "compile", "load", "simulate", "summarise", "run",
    "sensitivity", "sweep",
]
