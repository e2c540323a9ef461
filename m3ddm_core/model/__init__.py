"""The model layer: the M3DDM 3D UNet with its global-frame encoder, its config, and strict weight loading. Imports
nothing from the other layers."""
