"""The analysis layer: the quality check, the papers' evaluation metrics, before/after comparison frames. Built on
the media, pipeline and model layers; the nodes and the apps use it."""
