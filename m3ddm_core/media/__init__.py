"""The media layer: video files read and written through PyAV, and the composite streamed into them. Built on the
pipeline and model layers."""
