"""Immutable, content-addressed model versions and the aliases that point at them.

Everything lives in :mod:`inhouse.registry.core`; the names are re-exported
here so ``inhouse.registry.resolve(ws, "intents@production")`` reads naturally.
"""

from .core import *  # noqa: F401,F403
from .core import __all__  # noqa: F401
