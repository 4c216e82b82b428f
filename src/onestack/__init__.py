"""OneStack: a complete cloud platform that speaks OpenStack's APIs.

Each service lives in a sub-package named by its service type (``identity``,
``compute`` ...); ``core`` holds what they share and imports none of them.
"""

__version__ = "0.1.0"
