"""Whole-word masking (--mask-whole-words with --bpe) on prepare_corpus --tokenizer data, for WordPiece (## continues
a word), sentencepiece and a Metaspace tokenizer.json (▁ starts one): the word starts fairseq's masked_lm builds
equal a mask written by hand for a sentence of multi-piece words, and the masks it draws, anew every epoch, cover
whole words only. Built in this process with fairseq's own parser and task."""
import json

import numpy as np
import pytest
import sentencepiece
from fairseq import options, tasks
from fairseq.data import data_utils
from fairseq.data.encoders.utils import get_whole_word_mask
from fairseq.dataclass.utils import convert_namespace_to_omegaconf
from tokenizers import Tokenizer, models, pre_tokenizers

from conftest import USER_DIR, load_script
from fairseq_tokendrop.errors import TokendropError

SENTENCE = "the unaffable playwrights"
WORDPIECES = ["the", "un", "##aff", "##able", "play", "##wright", "##s"]
HAND_STARTS = [1, 1, 0, 0, 1, 0, 0]  # the | un ##aff ##able | play ##wright ##s
N_LINES = 60


def wordpiece_tokenizer(root):
    path = root / "vocab.txt"
    path.write_text("".join(t + "\n" for t in ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDPIECES, "cat"]))
    return path, ["--bpe", "bert", "--bpe-vocab-file", str(root / "bin" / "vocab.txt")], HAND_STARTS


def metaspace_tokenizer(root):
    """A Unigram over exactly these pieces: '▁unaffable' has one segmentation, ▁un aff able."""
    pieces = ["<s>", "<pad>", "</s>", "<unk>", "<mask>", "▁the", "▁un", "aff", "able", "▁play", "wright", "s", "▁cat"]
    tokenizer = Tokenizer(models.Unigram([(p, -1.0) for p in pieces], unk_id=3))
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace()
    tokenizer.add_special_tokens(pieces[:5])
    tokenizer.save(str(root / "tokenizer.json"))
    assert tokenizer.encode(SENTENCE).tokens == ["▁the", "▁un", "aff", "able", "▁play", "wright", "s"]
    return root / "tokenizer.json", ["--bpe", "tokenizer_json", "--tokenizer-json", str(root / "bin" / "tokenizer.json")], \
        HAND_STARTS


def sentencepiece_tokenizer(root):
    """A unigram model; the hand mask from the text itself: a piece starts a word where its text does (the
    first piece, or one whose stretch of the text starts with the space before a word)."""
    rng = np.random.default_rng(0)
    syllables = ["un", "aff", "able", "play", "wright", "s", "the", "ta", "ko", "ri", "mo", "pe"]
    words = ["the", "unaffable", "playwrights"] + ["".join(rng.choice(syllables, 3)) for _ in range(200)]
    corpus = [" ".join(rng.choice(words, 8)) for _ in range(400)]
    sentencepiece.SentencePieceTrainer.train(sentence_iterator=iter(corpus), model_prefix=str(root / "m"),
                                             vocab_size=60, minloglevel=2)
    processor = sentencepiece.SentencePieceProcessor(model_file=str(root / "m.model"))
    pieces = processor.encode(SENTENCE, return_type="proto").pieces
    starts = [int(i == 0 or p.surface.startswith(" ")) for i, p in enumerate(pieces)]
    assert sum(starts) == 3 and len(starts) > 4  # multi-piece words
    return root / "m.model", ["--bpe", "sentencepiece", "--sentencepiece-model", str(root / "bin" / "spm.model")], starts


def masked_lm_task(data, *flags):
    """Every sample one line: complete blocks of room for one line, <s> and </s> (fairseq's eos break mode
    fails under numpy 2, np.compat)."""
    line = len(data_utils.load_indexed_dataset(str(data / "train"))[0])
    parser = options.get_training_parser()
    args = options.parse_args_and_arch(parser, [str(data), "--user-dir", USER_DIR, "--task", "masked_lm_tokendrop",
                                                "--arch", "tokendrop_roberta_base", "--tokens-per-sample", str(line + 2),
                                                "--sample-break-mode", "complete", "--mask-prob", "0.4", "--seed", "5",
                                                *flags])
    task = tasks.setup_task(convert_namespace_to_omegaconf(args).task)
    task.load_dataset("train")
    return task


@pytest.fixture(scope="module", params=[wordpiece_tokenizer, metaspace_tokenizer, sentencepiece_tokenizer],
                ids=["wordpiece", "tokenizer.json", "sentencepiece"])
def prepared(request, tmp_path_factory):
    root = tmp_path_factory.mktemp("whole_words")
    tokenizer, bpe_flags, starts = request.param(root)
    (root / "lines.jsonl").write_text("".join(json.dumps({"text": SENTENCE}) + "\n" for _ in range(N_LINES)))
    load_script("prepare_corpus").main(["--train", str(root / "lines.jsonl"), "--valid", str(root / "lines.jsonl"),
                                        "--destdir", str(root / "bin"), "--tokenizer", str(tokenizer), "--workers", "1"])
    return root / "bin", bpe_flags, starts


def word_spans(starts):
    """[start, end) of each word of <s> SENTENCE </s> (the specials are words of their own)."""
    begins = [0] + [1 + i for i, s in enumerate(starts) if s] + [len(starts) + 1]
    return list(zip(begins, begins[1:] + [len(starts) + 2]))


def masked_positions(task, epoch):
    dataset = task.datasets["train"]
    dataset.set_epoch(epoch)
    pad = task.source_dictionary.pad()
    return [tuple(np.flatnonzero(dataset[i]["target"].numpy() != pad)) for i in range(len(dataset))]


def test_word_starts_are_the_hand_built_mask(prepared):
    data, bpe_flags, starts = prepared
    task = masked_lm_task(data, "--mask-whole-words", *bpe_flags)
    sentence_ids = data_utils.load_indexed_dataset(str(data / "train"), task.source_dictionary)[0][:-1]  # </s> off
    assert len(sentence_ids) == len(starts)
    assert get_whole_word_mask(task.args, task.source_dictionary)[sentence_ids].tolist() == starts


def test_masks_cover_whole_words_and_change_every_epoch(prepared):
    data, bpe_flags, starts = prepared
    spans = word_spans(starts)
    multi_piece = [(s, e) for s, e in spans if e - s > 1]

    def partial(positions):
        return any(0 < len(set(positions) & set(range(s, e))) < e - s for s, e in spans)

    task = masked_lm_task(data, "--mask-whole-words", *bpe_flags)
    first, second = masked_positions(task, 1), masked_positions(task, 2)
    for positions in first + second:
        assert not partial(positions)
    assert any(set(range(s, e)) <= set(p) for p in first for s, e in multi_piece)  # a multi-piece word, whole
    assert sum(a != b for a, b in zip(first, second)) > N_LINES // 2  # drawn anew each epoch (dynamic)
    # the control: the same data without the flag masks single pieces, so a word's pieces part
    assert any(partial(p) for p in masked_positions(masked_lm_task(data), 1))


def test_whole_words_without_a_bpe_are_refused(prepared):
    data, _, _ = prepared
    with pytest.raises(TokendropError, match="--mask-whole-words needs --bpe to tell where words start"):
        masked_lm_task(data, "--mask-whole-words")


def test_a_byte_level_tokenizer_json_is_refused_for_whole_words(tmp_path):
    from fairseq_tokendrop.data.tokenizer_json import read_tokenizer_json, word_start_rule

    tokenizer = Tokenizer(models.BPE({"<s>": 0, "</s>": 1, "<mask>": 2, "Ġa": 3, "a": 4}, []))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel()
    tokenizer.add_special_tokens(["<s>", "</s>", "<mask>"])
    tokenizer.save(str(tmp_path / "tokenizer.json"))
    with pytest.raises(TokendropError, match="cannot tell word starts from its tokens .model BPE, pre-tokenizer "
                                             "ByteLevel.: whole-word masking needs"):
        word_start_rule(read_tokenizer_json(str(tmp_path / "tokenizer.json")))
