"""napari plugin of unet: segment the selected image with a trained model (a dock widget), open
unet's output files, and the embedded synthetic data as samples. The manifest is napari.yaml."""
