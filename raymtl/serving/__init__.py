"""Using a trained RUN: `raymtl predict` (predict.py, models.py), the Ray Serve endpoint
(serve.py), export for use outside Ray (export.py) and the output formats (format.py)."""
