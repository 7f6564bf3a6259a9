"""Training control that fairseq-train lacks: when a step is really applied, and stopping at a target accuracy."""
