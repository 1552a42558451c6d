"""Storage: the one home of paths under the storage root, and the product stores."""

from memories.store.paths import StorageRoot

__all__ = ["StorageRoot"]
