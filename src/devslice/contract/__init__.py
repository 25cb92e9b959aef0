"""The environment contract: the variables a service reads to learn its slice.

Documented for every language in docs/contract.md.
"""

from devslice.contract.variables import Origin, Variable, slice_variables

__all__ = ["Origin", "Variable", "slice_variables"]
