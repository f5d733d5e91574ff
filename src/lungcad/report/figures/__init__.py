"""Report figures: one module per figure kind (key images, MIP, 3-D surfaces, Grad-CAM)."""
