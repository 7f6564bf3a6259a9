"""fairseq's ``masked_lm`` task for token-dropping pretraining.

Every data and masking option of ``masked_lm`` applies unchanged. What the task adds:

- token importance moves once per step fairseq applies, from every micro-batch of it
  (``train_step`` and ``optimizer_step``, timed by ``training/trainer_steps.py``); the model
  refuses importance dropping under a task that does not do this;
- fairseq's default criterion (``cross_entropy``) would train the model without ever updating
  token importance, so when no criterion is given this task uses ``masked_lm_tokendrop``. That
  keeps the ScTD seed command runnable with only the task and arch names changed;
- a pre-masked data dir (``convert_premasked``) is served with the file's own masks;
- every split's files are checked when it loads (``data/indexed_files.py``): torn, empty or holding
  ids the dictionary lacks, they are refused in one line naming the file; ``--sample-break-mode eos``
  works under numpy 2 (``data/fairseq_numpy2.py``);
- flags that could not do what they say are refused at startup: ``--sctd-interval`` on a model
  that never drops a token, ``--num-segment`` on training data without a second segment,
  ``--stop-at-mlm-acc`` and ``--eval-interval-samples`` without validation;
- ``--mask-whole-words`` works (with ``--bpe``, ``data/whole_words.py``), where stock ``masked_lm``
  fails (fairseq issue 3924);
- evaluation counts every example and never prefetches (``get_batch_iterator``);
- before the first update, the scores that fairseq's rank-0 broadcast of the checkpoint dropped
  come back (``checkpoints/scores_after_broadcast.py``); ``--ddp-backend fully_sharded`` is
  refused at startup;
- under ``--tensorboard-logdir``, at every validation: a histogram of the importance scores and the
  kept share of special, frequent and other tokens (``training/tensorboard_view.py``);
- two MLPerf-style options (see ``mlperf_target``): ``--eval-interval-samples`` sets fairseq's
  validate and save intervals from a number of samples, and ``--stop-at-mlm-acc`` ends the run
  at a target validation accuracy;
- under fairseq-train: checkpoints are written whole or not at all (``checkpoints/fairseq_saves.py``,
  installed when training starts); the file to resume from is checked before fairseq loads it, changed
  token-dropping flags are said, and a run that had finished ends at once (``training/resume.py``);
  one start-up line states the effective token dropping.
"""
import logging
from dataclasses import dataclass, field

from fairseq.tasks import register_task
from fairseq.tasks.masked_lm import MaskedLMConfig, MaskedLMTask
from fairseq.utils import safe_getattr, safe_hasattr

from ..checkpoints import fairseq_saves
from ..models.tokendrop_config import describe
from ..training import trainer_steps
from ..training.resume import choose_checkpoint, finished_reason
from ..training.tensorboard_view import tensorboard_view
from ..checkpoints.scores_after_broadcast import restore_scores_lost_in_broadcast
from ..criterions.masked_lm_tokendrop import MaskedLmTokenDropConfig, MaskedLmTokenDropLoss
from ..errors import TokendropError
from ..method.strategies import WITHOUT_UPDATES
from ..training.mlperf_target import (StopAtTarget, check_saves_follow_validation, eval_interval_updates, exit_now,
                                      global_batch_size)
from ..data.fairseq_numpy2 import numpy_compat_long
from ..data.indexed_files import check_data_bin_split
from ..data.premasked_dataset import epoch_data_dir, is_premasked_dir, premasked_task_dataset, second_segment_examples
from ..data.whole_words import bpe_settings

logger = logging.getLogger(__name__)


def check_ddp_backend(ddp_backend: str) -> None:
    """Refuse ``--ddp-backend fully_sharded`` at startup.

    fairscale's FSDP (CUDA only) was never run with this plugin: whether the
    importance scores (``state_dict._metadata``) survive its sharded and
    consolidated state dicts is untested, so it is refused rather than trusted.
    (The cross-attention layer runs inside its layer's forward, so FSDP's
    per-layer wrapping would cover it as it covers the others.)
    """
    if ddp_backend == "fully_sharded":
        raise TokendropError("--ddp-backend fully_sharded is not supported by --task masked_lm_tokendrop (never run: "
                        "fairscale's FSDP needs CUDA); use --ddp-backend c10d (the default), pytorch_ddp or legacy_ddp")


@dataclass
class MaskedLMTokenDropConfig(MaskedLMConfig):
    stop_at_mlm_acc: float = field(default=0.0, metadata={
        "help": "end training the first time validation mlm_acc reaches this value (MLPerf BERT: 0.720), "
                "after saving that update's checkpoint; 0 = off"})
    eval_interval_samples: str = field(default="", metadata={
        "help": "validate and save every N training samples, or 'mlperf' for MLPerf's "
                "floor(0.05*(230.23*B+3e6)/25000)*25000 at global batch B; sets "
                "--validate-interval-updates and --save-interval-updates"})


@register_task("masked_lm_tokendrop", dataclass=MaskedLMTokenDropConfig)
class MaskedLMTokenDropTask(MaskedLMTask):
    # train_step/optimizer_step below apply the importance update (models/ refuses other tasks)
    feeds_token_importance = True

    @classmethod
    def setup_task(cls, cfg, **kwargs):
        # fairseq-train sets up the task before it builds (and shards) the model; loading a
        # checkpoint (from_checkpoint) trains nothing, so its saved flags are not checked
        root = cfg._get_parent() if hasattr(cfg, "_get_parent") else None
        if root is not None and not kwargs.get("from_checkpoint"):
            check_ddp_backend(root.distributed_training.ddp_backend)
            choose_checkpoint(root)
        return super().setup_task(cfg, **kwargs)

    def __init__(self, cfg, dictionary=None):
        super().__init__(cfg, dictionary)
        self.training_started = False
        self.stop_at_target = None
        self.tensorboard_view = None
        self.model_needs_importance_updates = False
        self.built_model = None  # fairseq-train builds one model, then the criterion, then loads
        self.train_batches = None  # fairseq's epoch iterator over the training data
        self.model_never_drops = None  # why the model never drops a token (None: it does, or no model built yet)
        self.loading_checkpoint = False  # whether the model being built is a saved one (build_model)

    @classmethod
    def add_args(cls, parser):
        super().add_args(parser)
        # fairseq adds only the flags of the --criterion it parsed first (cross_entropy when none is
        # given), before any task is consulted; so the task brings the flags of the criterion it picks
        MaskedLmTokenDropLoss.add_args(parser)
        parser.set_defaults(criterion="masked_lm_tokendrop")

    def build_model(self, cfg, from_checkpoint=False):
        # the model's build_model is not told; a saved model skips the checks that matter to training only
        self.loading_checkpoint = from_checkpoint
        model = super().build_model(cfg, from_checkpoint)
        # fairseq-train builds the criterion next (a stock roberta under this task has no such properties)
        self.model_needs_importance_updates = getattr(model, "needs_importance_updates", False)
        self.built_model = model
        self.model_never_drops = getattr(model, "never_drops", f"--arch {safe_getattr(cfg, 'arch')} drops no token")
        return model

    def begin_epoch(self, epoch, model):
        # fairseq-train calls this after loading the checkpoint and before the first update, and only
        # training calls it, so loading a checkpoint for evaluation never trips over the training flags
        # it was saved with. The segments at every epoch (--data may give each epoch its own dir); the
        # rest once, at the first epoch this process trains.
        super().begin_epoch(epoch, model)
        self._check_segments(epoch, safe_getattr(getattr(model, "args", None), "num_segment", 0) or 0)
        if not self.training_started:
            self.training_started = True
            fairseq_saves.install()  # before the first update, so before any save
            tracker = getattr(model, "token_importance", None)  # None for a stock roberta under this task
            root = self.cfg._get_parent() if hasattr(self.cfg, "_get_parent") else None
            if tracker is not None and root is not None:  # the checkpoint was loaded; no update yet
                restore_scores_lost_in_broadcast(tracker, root.checkpoint, next(model.parameters()).device)
            if root is not None:
                self.tensorboard_view = tensorboard_view(root, model)
            if self.cfg.stop_at_mlm_acc or self.cfg.eval_interval_samples:
                self.stop_at_target = self._schedule_mlperf_eval()

    def _schedule_mlperf_eval(self):
        root = self.cfg._get_parent()  # fairseq parents task configs on the run's full config
        if root is None:
            raise TokendropError("--stop-at-mlm-acc / --eval-interval-samples need fairseq-train's configuration")
        dataset, checkpoint = root.dataset, root.checkpoint
        if dataset.disable_validation:
            flag = "--stop-at-mlm-acc" if self.cfg.stop_at_mlm_acc else "--eval-interval-samples"
            raise TokendropError(f"{flag} acts at validations, and --disable-validation leaves none")
        if self.cfg.eval_interval_samples:
            batch = global_batch_size(dataset.batch_size, root.optimization.update_freq,
                                      root.distributed_training.distributed_world_size)
            samples, updates = eval_interval_updates(self.cfg.eval_interval_samples, batch)
            for flag, value in (("--validate-interval-updates", dataset.validate_interval_updates),
                                ("--save-interval-updates", checkpoint.save_interval_updates)):
                if value and value != updates:
                    raise TokendropError(f"--eval-interval-samples {self.cfg.eval_interval_samples} means every "
                                    f"{updates} updates at global batch {batch}, but {flag} is {value}")
            dataset.validate_interval_updates = checkpoint.save_interval_updates = updates
            logger.info(f"validating and saving every {updates} updates: {samples} samples "
                        f"at global batch {batch} (--eval-interval-samples {self.cfg.eval_interval_samples})")
        if not self.cfg.stop_at_mlm_acc:
            return None
        if not 0.0 < self.cfg.stop_at_mlm_acc <= 1.0:
            raise TokendropError(f"--stop-at-mlm-acc must be in (0, 1], got {self.cfg.stop_at_mlm_acc}")
        if "," in dataset.valid_subset:
            raise TokendropError(f"--stop-at-mlm-acc watches one validation set, got --valid-subset {dataset.valid_subset}")
        if not checkpoint.no_save:
            check_saves_follow_validation(dataset.validate_interval_updates, checkpoint.save_interval_updates,
                                          dataset.validate_interval, checkpoint.save_interval)
        return StopAtTarget(self.cfg.stop_at_mlm_acc, checkpoint.no_save)

    def post_validate(self, model, stats, agg):
        if self.stop_at_target is not None:
            self.stop_at_target.observe(stats, agg)
        if self.tensorboard_view is not None:
            self.tensorboard_view.at_validation(stats["num_updates"])

    def post_save(self, cp_path, num_updates):
        if self.stop_at_target is not None:
            self.stop_at_target.after_save(cp_path, num_updates)

    def get_checkpoint_dict(self):
        # fairseq merges this into extra_state (every rank gets it back) and hands the entry under
        # the task's class name to set_checkpoint_dict after a load: where a start learns that the
        # target was reached
        reached = self.stop_at_target.reached if self.stop_at_target is not None else None
        return {type(self).__name__: {"stop_at_mlm_acc": reached}}

    def set_checkpoint_dict(self, state):
        # fairseq calls this on every rank right after loading a checkpoint and positioning the
        # training data, unless --reset-dataloader; no update has run and nothing has been written
        root = self.cfg._get_parent() if hasattr(self.cfg, "_get_parent") else None
        if root is None or self.train_batches is None:
            return
        # Trainer.load_checkpoint gives the model the loaded update count (a stock roberta keeps none);
        # --reset-optimizer starts fairseq's own count at 0 all the same
        updates = None if root.checkpoint.reset_optimizer else getattr(self.built_model, "num_updates", None)
        reason = finished_reason(root, updates, self.train_batches, state.get("stop_at_mlm_acc"))
        if reason:
            logger.info(f"nothing to do: this run is finished ({reason}); its checkpoints stay as they are")
            exit_now()

    def train_step(self, sample, model, criterion, optimizer, update_num, ignore_grad=False):
        if self.stop_at_target is not None:
            self.stop_at_target.before_update()
        with trainer_steps.micro_batch(model, ignore_grad):
            return super().train_step(sample, model, criterion, optimizer, update_num, ignore_grad)

    def optimizer_step(self, optimizer, model, update_num):
        # fairseq calls this only for steps it applies (AMP aside, see trainer_steps.optimizer_step):
        # token importance moves here, once per step, from every micro-batch and rank
        with trainer_steps.optimizer_step(model, optimizer):
            super().optimizer_step(optimizer, model, update_num)

    def load_dataset(self, split, epoch=1, combine=False, **kwargs):
        data_dir = epoch_data_dir(self, epoch)
        if is_premasked_dir(data_dir):  # served with the file's own masks (scripts/convert_premasked.py)
            if self.cfg.sample_break_mode != "none":
                raise TokendropError(f"--sample-break-mode {self.cfg.sample_break_mode} does not apply to the "
                                     f"pre-masked data dir {data_dir}: each example is one converted record")
            self.datasets[split] = premasked_task_dataset(self, split, data_dir)
        else:
            # masked_lm adds <mask> after dict.txt's entries, and the data must not hold it
            dictionary = self.source_dictionary
            ids = self.mask_idx if self.mask_idx == len(dictionary) - 1 else len(dictionary)
            check_data_bin_split(data_dir, split, combine, ids)
            with numpy_compat_long():
                super().load_dataset(split, epoch, combine, **kwargs)

    def _check_segments(self, epoch: int, segments: int) -> None:
        """A model with ``segments`` (``--num-segment``) needs training data with a second segment, and room
        for it in its table. Training only: a model with segments may evaluate single-segment data."""
        if not segments:
            return
        data_dir, split = epoch_data_dir(self, epoch), self._train_subset()
        second = second_segment_examples(data_dir, split) if is_premasked_dir(data_dir) else 0
        if not second:
            raise TokendropError(f"--num-segment {segments}: the training data (split '{split}' of {data_dir}) has no "
                                 "second segment, so only the first row of the segment table would ever train: "
                                 "leave --num-segment out (an import without --keep-segments folds that row in)")
        if segments < 2:
            raise TokendropError(f"--num-segment {segments}: {second} examples of split '{split}' of {data_dir} have "
                                 "a second segment (segment 1), outside the table: use --num-segment 2")

    @property
    def args(self):
        # MaskedLMTask.load_dataset builds --mask-whole-words' mask from self.args, which only fairseq's
        # legacy tasks set (fairseq issue 3924): here it reads the run's --bpe (data/whole_words.py).
        # Without the flag the task has no args, as any task but the legacy ones.
        if not self.cfg.mask_whole_words:
            raise AttributeError("args")
        return bpe_settings(self.cfg)

    def get_batch_iterator(self, dataset, **kwargs):
        # fairseq drops a last batch whose size is not a multiple of --required-batch-size-multiple
        # (data_utils.batch_by_size), in validation too (fairseq issue 5036), so validation would score
        # part of the eval set. Evaluation batches therefore take no multiple: every example counts,
        # at any batch size; sharding over ranks already pads with dummy batches that count nothing.
        # fairseq's prefetcher (BufferedIterator, --data-buffer-size) is a daemon thread, and one still
        # inside torch code when the process exits aborts it (SIGABRT, "terminate called without an
        # active exception"; stock masked_lm too). A validation cut short by --max-valid-steps leaves
        # one working at every exit, and without --num-workers it also does the masking itself, under
        # the GIL, for almost no gain. So evaluation never prefetches, and training only with workers;
        # the batches are the same either way.
        evaluation = dataset is not self.datasets.get(self._train_subset())
        if evaluation:
            kwargs["required_batch_size_multiple"] = 1
        if evaluation or kwargs.get("num_workers", 0) == 0:
            kwargs["data_buffer_size"] = 0
        batches = super().get_batch_iterator(dataset, **kwargs)
        if not evaluation:
            self.train_batches = batches
        return batches

    def _train_subset(self) -> str:
        root = self.cfg._get_parent() if hasattr(self.cfg, "_get_parent") else None
        dataset = getattr(root, "dataset", None) if root is not None else None
        return getattr(dataset, "train_subset", None) or "train"

    def build_criterion(self, cfg, from_checkpoint=False):
        model_args = getattr(self.built_model, "args", None)
        if not from_checkpoint and safe_hasattr(model_args, "token_drop"):
            # fairseq-train builds the criterion once, after the model: the start-up line on what is dropped
            # (cross_entropy, replaced below, has no ScTD: 0 is the default of ours too)
            logger.info(describe(model_args, getattr(cfg, "sctd_interval", 0)))
        if getattr(cfg, "_name", None) == "cross_entropy":
            logger.info("--task masked_lm_tokendrop: using --criterion masked_lm_tokendrop "
                        "(fairseq's default cross_entropy never updates token importance)")
            return MaskedLmTokenDropLoss(MaskedLmTokenDropConfig(), self)
        criterion = super().build_criterion(cfg, from_checkpoint)
        if self.model_needs_importance_updates and not isinstance(criterion, MaskedLmTokenDropLoss):
            name = getattr(cfg, "_name", type(criterion).__name__)
            raise TokendropError(f"--criterion {name} never updates token importance: use "
                            f"--criterion masked_lm_tokendrop, or {WITHOUT_UPDATES}")
        interval = getattr(getattr(criterion, "cfg", None), "sctd_interval", 0)
        if interval and self.model_never_drops:
            raise TokendropError(f"--sctd-interval {interval} needs token dropping, but {self.model_never_drops}: "
                                 f"every {interval} updates ScTD would run the same undropped model a second time, "
                                 "doubling their cost for a consistency loss between two dropout draws")
        return criterion
