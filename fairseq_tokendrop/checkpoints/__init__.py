"""The travel of checkpoints: safe loading, writing, and Hugging Face weights."""
