"""The environment contract: the variables a service reads to learn its slice.

Each shared service adds its own variables (:mod:`devslice.services`); ``variables`` orders
them with the slice's own and the overrides, and says what pods see; ``render`` writes them
out. Documented for every language in docs/contract.md.
"""

from devslice.contract.variables import Origin, Variable, slice_variables

__all__ = ["Origin", "Variable", "slice_variables"]
