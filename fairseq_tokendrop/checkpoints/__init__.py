"""What training reads and writes: safe loading under torch >= 2.6, saved importance scores, checkpoints
written for fairseq-train, and the scores across fairseq's rank-0 broadcast."""
