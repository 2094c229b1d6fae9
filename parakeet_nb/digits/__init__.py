"""A tiny Parakeet-style TDT model that recognises spoken digit strings, trained on a CPU.

The data come from ``data/digits/make_digits.py`` (espeak-ng voices; the committed test
set in ``data/digits/test/`` uses voice variants the training set never saw). The model
is NeMo's own ``EncDecRNNTBPEModel`` built by :func:`parakeet_nb.model.checkpoint.build_tdt_model`
with :data:`parakeet_nb.digits.training.DIGITS_PRESET`: the Parakeet preprocessor (128 mels), a small FastConformer
encoder (``dw_striding`` by 8), a one-layer LSTM prediction network and a TDT joint with
durations ``[0, 1, 2, 3, 4]``; the tokenizer is a SentencePiece unigram model trained on
the digit words (one piece per word). NeMo 3.0's TDT losses need CUDA, so the loss is
:func:`parakeet_nb.model.tdt_loss.tdt_loss`; validation decodes greedily with
:mod:`parakeet_nb.model.tdt`, exactly as the exported pipeline does.

Command line (from the project root)::

    python -m parakeet_nb.digits train      # data if missing, train, save, evaluate, model card
    python -m parakeet_nb.digits evaluate   # WER of data/digits_tdt.nemo on the test sets

Shapes: ``B`` batch, ``S`` samples, ``F`` mel frames, ``T`` encoder frames, ``U`` labels,
``V`` vocabulary without the blank, ``K`` durations.

Modules: :mod:`~parakeet_nb.digits.corpus` (data, tokenizer, batches),
:mod:`~parakeet_nb.digits.training`, :mod:`~parakeet_nb.digits.evaluation`,
:mod:`~parakeet_nb.digits.wer`, :mod:`~parakeet_nb.digits.card`.
"""

import os

# OpenMP threads that spin while waiting waste most of the CPU when other processes share
# the cores (measured: 2 threads were 3-4x slower than 1 thread, with passive waiting 1.4x).
# Only effective if torch is not imported yet (e.g. ``python -m parakeet_nb.digits``).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
