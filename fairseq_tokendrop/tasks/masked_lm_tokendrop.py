"""fairseq's ``masked_lm`` task for token-dropping pretraining.

Every data and masking option of ``masked_lm`` applies unchanged. The one
difference: fairseq's default criterion (``cross_entropy``) would train the
model without ever updating token importance, so when no criterion is given
this task uses ``masked_lm_tokendrop``. That keeps the ScTD seed command
runnable with only the task and arch names changed.
"""
import logging
from dataclasses import dataclass

from fairseq.tasks import register_task
from fairseq.tasks.masked_lm import MaskedLMConfig, MaskedLMTask

from ..criterions.masked_lm_tokendrop import MaskedLmTokenDropConfig, MaskedLmTokenDropLoss

logger = logging.getLogger(__name__)


@dataclass
class MaskedLMTokenDropConfig(MaskedLMConfig):
    pass


@register_task("masked_lm_tokendrop", dataclass=MaskedLMTokenDropConfig)
class MaskedLMTokenDropTask(MaskedLMTask):
    def build_criterion(self, cfg, from_checkpoint=False):
        if getattr(cfg, "_name", None) == "cross_entropy":
            logger.info("--task masked_lm_tokendrop: using --criterion masked_lm_tokendrop "
                        "(fairseq's default cross_entropy never updates token importance)")
            return MaskedLmTokenDropLoss(MaskedLmTokenDropConfig(), self)
        return super().build_criterion(cfg, from_checkpoint)
