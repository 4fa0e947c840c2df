"""Tiny heads for every vision method, shared by the tests and their subprocess scripts."""

from keras_ssl.vision import heads as H

TINY_HEADS = {
    "SimCLR": lambda: dict(projection=H.simclr_projection(output_dim=8, hidden_dim=16), temperature=0.5),
    "MoCo": lambda: dict(projection=H.moco_projection(16, 8), queue_size=40, momentum=0.9),
    "BYOL": lambda: dict(projection=H.byol_projection(16, 8), prediction=H.byol_prediction(16, 8),
                         total_steps=10),
    "SimSiam": lambda: dict(projection=H.simsiam_projection(output_dim=16),
                            prediction=H.simsiam_prediction(8, 16)),
    "BarlowTwins": lambda: dict(projection=H.barlow_projection(dim=16)),
    "VICReg": lambda: dict(projection=H.vicreg_projection(dim=16)),
}
