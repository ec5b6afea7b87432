"""Close the loop: train a small separator on stemforge mixtures and measure it (needs torch).

* :mod:`.model` — ``MaskSeparator`` (Open-Unmix-like masks on magnitude STFTs), ``spectral_loss``
* :mod:`.loop` — ``train(recipe, index, out, TrainConfig, ModelConfig)``: DataLoader over
  ``MixtureDataset``, validation on ``ValidationDataset``, checkpoints, bit-exact resume
* :mod:`.checkpoint` — checkpoint format, ``load_model``
* :mod:`.separate` — ``separate_array`` / ``separate_file`` for whole recordings
* :mod:`.evaluate` — BSS Eval v4 SDR and SI-SDR on held-out tracks, oracle estimators
* :mod:`.experiment` — the data-limited augmentation study (protocol, ablation rows, jobs)
* :mod:`.results` — its statistics (seeds, paired differences), tables and curves
* :mod:`.corpus` — a multitrack corpus: music21 scores rendered with FluidSynth (no torch)
* :mod:`.synth` — synthetic 4-stem songs (numpy only)

Submodules are imported on demand, so ``import stemforge.train.synth`` works without torch.
"""
