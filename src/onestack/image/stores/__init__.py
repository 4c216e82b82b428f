"""Where image data lives: the ``Store`` contract, the filesystem store and a fake."""

from onestack.image.stores.base import (
    DataNotFound,
    SizeLimitExceeded,
    SizeMismatch,
    Store,
    StoredData,
    StoreError,
)
from onestack.image.stores.filesystem import FilesystemStore
from onestack.image.stores.memory import MemoryStore

__all__ = [
    "DataNotFound",
    "FilesystemStore",
    "MemoryStore",
    "SizeLimitExceeded",
    "SizeMismatch",
    "Store",
    "StoreError",
    "StoredData",
]
