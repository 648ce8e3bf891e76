"""The model repository: the one contract between ``export/`` (writes it) and ``service/`` (serves it).

Torch-free on purpose: the serving runtime imports this package, and so does the exporter.
"""
