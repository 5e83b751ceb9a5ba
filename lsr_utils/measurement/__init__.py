"""Layer 8 of 9, measurement: what the paper measures, measured.

``metrics`` (MSE, sharpness, sample variance, classification, the object's hue), ``fid`` (FID with the Inception
network, offline), ``classifier`` (the classifier behind the classification metrics and the offline score),
``evaluate`` (one evaluation record per run), ``report`` (the paper's tables and claims from the records).
"""
