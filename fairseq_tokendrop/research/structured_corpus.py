"""Made-up text with structure a masked LM can learn, for runs that must bring their own data.

The device check's fairseq-train run (``gpu_check.py``) and the test suite train on it: a word is
followed by a fixed successor most of the time, so the loss falls within a few hundred updates.
"""
import random


def write_structured_corpus(path, n_lines: int, seed: int, vocab: int = 200, max_words: int = 40) -> None:
    """``n_lines`` lines of 8 to ``max_words`` words ``w0 .. w{vocab-1}``, a blank line after every tenth
    (a document boundary for fairseq-preprocess). After word ``w`` comes ``(7w + 3) mod vocab`` with
    probability 0.9, otherwise a uniform word; the first word of a line is uniform."""
    rng = random.Random(seed)
    with open(path, "w") as f:
        for i in range(n_lines):
            w, words = rng.randrange(vocab), []
            for _ in range(rng.randint(8, max_words)):
                words.append(f"w{w}")
                w = (w * 7 + 3) % vocab if rng.random() < 0.9 else rng.randrange(vocab)
            f.write(" ".join(words) + ("\n\n" if i % 10 == 9 else "\n"))
