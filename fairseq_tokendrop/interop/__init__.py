"""Conversion to and from other ecosystems: Hugging Face weights and tokenizers, TensorFlow BERT
checkpoints, the ScTD authors' fork. The commands and the research tools import it; training never does."""
