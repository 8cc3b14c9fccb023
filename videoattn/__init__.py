"""videoattn: 3D attention blocks for video recognition."""
