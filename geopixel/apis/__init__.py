"""High-level inference API (INFERENCERS registry): the same model class as
training, loaded from a config and checkpoint."""
