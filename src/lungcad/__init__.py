"""lungcad: lung-nodule computer-aided detection for chest CT."""

__version__ = "0.1.0"
