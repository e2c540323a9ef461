"""The media layer: video files read and written through PyAV, the composite streamed into them, and a file
through the pipeline and back (outpainted.py). Built on the pipeline and model layers."""
