"""Training any model family (:mod:`pyro_ccvae.models`) with :class:`pyro.infer.SVI` and the
family's objective, into a run directory; on one process or several (torchrun).

=====================  ===========================================================================
:mod:`.trainer`        :class:`Trainer` and :func:`train`: set-up, then the parts below composed
:mod:`.setup`          rank 0's reading and checking of the run directory in one step, its writing
                       once everything is checked; the labelled subset; the step's size check
:mod:`.batches`        the training split on the device, masked per supervision stage, sharded
:mod:`.loop`           the epochs of steps, the read points, the OOM and NaN messages
:mod:`.checkpointing`  the position, saving it and resuming from it exactly
:mod:`.signals`        stop requests (Ctrl-C, SIGTERM, SIGUSR1) and what a stopped run says
:mod:`.report`         each epoch's validation, ``metrics.jsonl`` line and TensorBoard events; the summary
=====================  ===========================================================================

What a run directory holds, and all reading and writing of it, is :mod:`pyro_ccvae.run_directory`'s. How
several processes share a run (sharded batches, summed gradients, rank 0 writing) is
:mod:`pyro_ccvae.distributed`'s; keyed noise is :mod:`pyro_ccvae.noise`'s, bf16 and
``torch.compile`` :mod:`pyro_ccvae.acceleration`'s, TensorBoard :mod:`pyro_ccvae.tracking`'s.
"""
from .errors import TrainingError, TrainingInterrupted
from .report import predict_probs
from .setup import choose_labelled
from .trainer import Trainer, train

__all__ = ["Trainer", "TrainingError", "TrainingInterrupted", "choose_labelled", "predict_probs", "train"]
