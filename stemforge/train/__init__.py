"""Close the loop: train a small separator on stemforge mixtures and measure it (needs torch).

* :mod:`.model` — ``MaskSeparator`` (Open-Unmix-like masks on magnitude STFTs), ``spectral_loss``
* :mod:`.loop` — ``train(recipe, index, out, TrainConfig, ModelConfig)``: DataLoader over
  ``MixtureDataset``, validation on ``ValidationDataset``, checkpoints, bit-exact resume
* :mod:`.checkpoint` — checkpoint format, ``load_model``
* :mod:`.separate` — ``separate_array`` / ``separate_file`` for whole recordings
* :mod:`.evaluate` — BSS Eval v4 SDR and SI-SDR on held-out tracks, oracle estimators
* :mod:`.experiment` — the augmentation experiment (plain / tutorial / stemforge recipes)
* :mod:`.synth` — synthetic 4-stem songs (numpy only)

Submodules are imported on demand, so ``import stemforge.train.synth`` works without torch.
"""
