"""probssl: probabilistic self-supervised learning in PyTorch.

Recognition-parameterised models (InfoNCE as an ELBO), SimVAE and their baselines, trained
by one trainer and evaluated under one protocol.
"""

__version__ = "0.1.0"
