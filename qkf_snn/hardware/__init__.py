"""Hardware-facing tools: profilers (``hardware.profile``) and NIR export / Norse check (``hardware.nir``).

Subpackages are imported on use, so profiling never pays for importing Norse and nirtorch.
"""
