"""Qt widgets: the only package of napari-m1 that imports qtpy."""
