"""qflhw: quantum federated learning on real QPUs and their faithful fake twins.

Importing the package is cheap and needs no credentials: cloud SDKs load only when a device that
needs them is built.
"""

from qflhw.errors import QflhwError

__version__ = "0.1.0"
__all__ = ["QflhwError", "__version__"]
