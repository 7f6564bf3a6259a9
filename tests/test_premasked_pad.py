"""An in-sequence [PAD] (id 0 with input_mask 1, a random replacement the producers draw from the whole
vocabulary) stays a token: in the converted data, in the batches, in the model and in the HF export.

BERT tells padding by ``input_mask``; fairseq by the ``<pad>`` id (hidden from attention, a zero
embedding, skipped by the positions, dropped first by token dropping). So [PAD] has a dictionary entry
of its own. The HF import side (an in-sequence [PAD] gives BERT's logits) is in test_hf_roundtrip.py.
"""
import copy
import json
import shutil

import pytest
import torch

from fairseq_tokendrop import get_token_importance
from fairseq_tokendrop.errors import TokendropError
from fairseq_tokendrop.interop.hf_weights import fairseq_to_hf_roberta, hf_roberta_config
from fairseq_tokendrop.tasks.masked_lm_tokendrop import MaskedLMTokenDropConfig, MaskedLMTokenDropTask

from conftest import TINY_DIMS, build_tokendrop
from premasked_fixtures import SPECIALS, by_symbol, vocab_tokens

pytestmark = pytest.mark.slow  # starts processes: not in the fast tier (tests/run.sh --fast)


def valid_batch(premasked):
    """The task's whole valid split as one batch, and its dictionary."""
    task = MaskedLMTokenDropTask.setup_task(MaskedLMTokenDropConfig(data=str(premasked["dest"]), tokens_per_sample=32,
                                                                 seed=1))
    task.load_dataset("valid")
    dataset = task.dataset("valid")
    return dataset.collater([dataset[i] for i in range(len(dataset))]), task.source_dictionary


def test_an_in_sequence_pad_reaches_the_batch_as_a_token(premasked):
    batch, dictionary = valid_batch(premasked)
    pad_token = dictionary.index("[PAD]")
    assert pad_token not in (dictionary.pad(), dictionary.unk())
    found = 0
    for row, index in enumerate(batch["id"].tolist()):
        ex = premasked["examples"]["valid"][index]
        for position in torch.nonzero(torch.from_numpy(ex["input_ids"] == SPECIALS["[PAD]"])
                                      & torch.from_numpy(ex["input_mask"] == 1)).flatten().tolist():
            assert batch["net_input"]["src_tokens"][row, position] == pad_token
            found += 1
    assert found >= 5
    # and padding is still <pad>: the batch pads the shorter rows with it
    assert (batch["net_input"]["src_tokens"] == dictionary.pad()).sum() == (
        batch["net_input"]["src_tokens"].numel() - batch["net_input"]["src_lengths"].sum())


def sequence_with_pad(premasked, dictionary):
    ex = next(e for e in premasked["examples"]["valid"]
              if SPECIALS["[PAD]"] in e["input_ids"][:int(e["input_mask"].sum())])
    tokens = torch.from_numpy(by_symbol(vocab_tokens(), dictionary, ex["input_ids"][:int(ex["input_mask"].sum())]))
    return tokens[None], int((tokens == dictionary.index("[PAD]")).nonzero()[0])


def test_the_model_embeds_attends_and_counts_positions_for_it(premasked):
    """Equal features to the same sequence with an ordinary word whose embedding is [PAD]'s: so [PAD] is
    embedded with its own row, attended to, and the positions after it are not shifted."""
    _, dictionary = valid_batch(premasked)
    model = build_tokendrop(dictionary, seed=1).eval()
    tokens, where = sequence_with_pad(premasked, dictionary)
    word = dictionary.index("w7")
    twin = copy.deepcopy(model)
    with torch.no_grad():
        embed = twin.encoder.sentence_encoder.embed_tokens.weight
        embed[word] = embed[dictionary.index("[PAD]")]
        features = model(tokens, features_only=True)[0]
        with_word = tokens.clone()
        with_word[0, where] = word
        assert torch.allclose(twin(with_word, features_only=True)[0], features, atol=1e-6, rtol=0)
        as_padding = tokens.clone()  # what the conversion used to store
        as_padding[0, where] = dictionary.pad()
        differs = (model(as_padding, features_only=True)[0] - features).abs().amax(-1)[0]
    assert (differs[where + 1:] > 1e-3).all()  # a padding id would have shifted every later position
    # token dropping keeps it by its own importance: only <pad> is on the default deny list
    scores = get_token_importance(build_tokendrop(dictionary, token_drop=0.5))
    assert scores[dictionary.index("[PAD]")] == 10.0 and scores[dictionary.pad()] == -1e4


def test_the_hf_export_treats_it_as_a_token(premasked):
    import transformers
    _, dictionary = valid_batch(premasked)
    model = build_tokendrop(dictionary, seed=2).eval()
    dims = dict(encoder_layers=TINY_DIMS["encoder_layers"], encoder_embed_dim=TINY_DIMS["encoder_embed_dim"],
                encoder_ffn_embed_dim=TINY_DIMS["encoder_ffn_embed_dim"], max_positions=TINY_DIMS["max_positions"],
                encoder_attention_heads=TINY_DIMS["encoder_attention_heads"], dropout=0.0, attention_dropout=0.0)
    hf = transformers.RobertaForMaskedLM(transformers.RobertaConfig(**hf_roberta_config(dims, len(dictionary))))
    hf.load_state_dict(fairseq_to_hf_roberta(model.state_dict(), dims["encoder_layers"]), strict=False)
    hf.eval()
    tokens, _ = sequence_with_pad(premasked, dictionary)
    with torch.no_grad():
        expected = model(tokens)[0]
        got = hf(input_ids=tokens, attention_mask=torch.ones_like(tokens)).logits
    assert (got - expected).abs().max() <= 1e-4


def test_data_converted_when_pad_was_padding_is_refused(premasked, tmp_path):
    """A v1 dir stored in-sequence [PAD]s as <pad>: training on it would hide them, so it must be converted again."""
    old = tmp_path / "bin"
    shutil.copytree(premasked["dest"], old)
    meta = json.loads((old / "premasked.json").read_text())
    (old / "premasked.json").write_text(json.dumps({**meta, "version": 1}))
    task = MaskedLMTokenDropTask.setup_task(MaskedLMTokenDropConfig(data=str(old), tokens_per_sample=32, seed=1))
    with pytest.raises(TokendropError, match=r"premasked.json: written by another version of the converter \(v1, "
                                        r"this one reads v2/v3\): convert the data again"):
        task.load_dataset("valid")
