"""The released model: its real-data corpus, training recipe, detail-strength calibration and card.

``satsr release train`` reproduces ``weights/release/`` (about 1-2 h on 2 CPU cores); the recipe
is ``params.yaml: release``. Held-out real pairs and Sentinel-2 scenes are never trained or tuned on.
"""
