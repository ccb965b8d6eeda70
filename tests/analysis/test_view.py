"""The readable-view transform: special tokens and punctuation dropped as targets, rows renormalised."""

import numpy as np
import pytest

from attnflows_callback.analysis import merge_word_pieces, rollout
from attnflows_callback.analysis.view import (
    drop_targets,
    keep_mask,
    kept_mass,
    mass_by_role,
    token_roles,
    word_view,
)

from .conftest import random_attention

TOKENS = ["[CLS]", "not", "soggy", "##ish", ",", "fine", "[SEP]"]
WORD_IDS = [None, 0, 1, 1, 2, 3, None]


def test_roles_come_from_word_ids_first_and_token_strings_without_them():
    assert token_roles(TOKENS, WORD_IDS) == ["special", "content", "content", "content", "punctuation", "content",
                                              "special"]
    assert token_roles(TOKENS) == token_roles(TOKENS, WORD_IDS)
    # a tokenizer's word ids win over strings: a literal "[SEP]" typed in the text is a word
    assert token_roles(["[CLS]", "[SEP]", "[SEP]"], [-1, 0, -1]) == ["special", "content", "special"]


def test_dropped_targets_get_nothing_and_kept_targets_keep_their_proportions():
    rng = np.random.default_rng(0)
    attn = random_attention(rng, 2, 3, len(TOKENS))
    keep = keep_mask(TOKENS, WORD_IDS, drop_punctuation=True)
    assert keep.tolist() == [False, True, True, True, False, True, False]
    shown = drop_targets(attn, keep)
    assert shown.shape == attn.shape
    assert (shown[..., ~keep] == 0).all()
    np.testing.assert_allclose(shown.sum(axis=-1), 1.0)
    # ratios between kept targets are those of the raw attention
    np.testing.assert_allclose(shown[..., 1] / shown[..., 5], attn[..., 1] / attn[..., 5])
    np.testing.assert_allclose(kept_mass(attn, keep), attn[..., keep].sum(axis=-1))


def test_a_row_whose_mass_sat_only_on_dropped_targets_shows_nothing():
    attn = np.zeros((1, 1, 3, 3))
    attn[0, 0, :, 0] = 1.0  # every position parks on [CLS]
    attn[0, 0, 2] = [0.5, 0.0, 0.5]
    shown = drop_targets(attn, np.array([False, True, True]))
    assert shown[0, 0, 0].tolist() == [0.0, 0.0, 0.0] and shown[0, 0, 1].tolist() == [0.0, 0.0, 0.0]
    assert shown[0, 0, 2].tolist() == [0.0, 0.0, 1.0]
    # rollout through an empty row keeps only the residual: the position passes on its own mass
    assert rollout(shown)[-1][0].tolist() == [1.0, 0.0, 0.0]


def test_stored_attention_is_not_modified():
    attn = random_attention(np.random.default_rng(1), 1, 2, 4)
    before = attn.copy()
    drop_targets(attn, np.array([False, True, True, True]))
    np.testing.assert_array_equal(attn, before)


def test_works_on_rollout_maps_and_single_rows_and_composes_with_word_merging():
    rng = np.random.default_rng(2)
    attn = random_attention(rng, 3, 2, len(TOKENS))
    keep = keep_mask(TOKENS, WORD_IDS)
    maps = rollout(attn)
    np.testing.assert_allclose(drop_targets(maps, keep).sum(-1), 1.0)
    np.testing.assert_allclose(drop_targets(maps[-1][:1], keep)[0], maps[-1][0] * keep / maps[-1][0][keep].sum())
    words, kept = word_view(attn, WORD_IDS, keep)
    np.testing.assert_allclose(words, merge_word_pieces(drop_targets(attn, keep), WORD_IDS))
    assert kept.tolist() == [False, True, True, True, True, False]  # [CLS] not soggyish , fine [SEP]
    np.testing.assert_allclose(words.sum(-1), 1.0)


def test_mass_by_role_sums_by_role():
    result = mass_by_role([0.5, 0.2, 0.1, 0.1, 0.05, 0.05, 0.0], token_roles(TOKENS, WORD_IDS))
    assert result["special"] == pytest.approx(0.5) and result["punctuation"] == pytest.approx(0.05)
    assert result["content"] == pytest.approx(0.45) and result["content_share"] == pytest.approx(0.45)


@pytest.mark.parametrize(
    "attn, keep, message",
    [
        (np.full((3,), 1 / 3), [True, True, True], "at least 2 dimensions"),
        (np.full((2, 2), 0.5), [True], "one entry per target token \\(2\\)"),
        (np.full((2, 2), 0.5), [1, 1], "bool array"),
        (np.full((2, 2), 0.5), [False, False], "keep at least one"),
        (np.array([[0.5, np.nan], [0.5, 0.5]]), [True, True], "finite"),
        (np.array([[0.9, 0.9], [0.5, 0.5]]), [True, True], "sum to at most 1"),
    ],
)
def test_bad_input_names_the_argument(attn, keep, message):
    with pytest.raises(ValueError, match=message):
        drop_targets(attn, np.asarray(keep))


def test_word_ids_of_the_wrong_length_are_refused():
    with pytest.raises(ValueError, match="word_ids must hold one id per token"):
        token_roles(TOKENS, WORD_IDS[:-1])


def test_apply_view_gives_a_route_everything_it_draws():
    from attnflows_callback.analysis.view import VIEW_DEFAULTS, apply_view

    attn = random_attention(np.random.default_rng(3), 2, 2, len(TOKENS))
    view = apply_view(attn, TOKENS, WORD_IDS)  # the defaults: special and punctuation dropped, words merged
    assert VIEW_DEFAULTS == {"drop_special": True, "drop_punctuation": True, "words": True}
    assert view.labels == ["[CLS]", "not", "soggyish", ",", "fine", "[SEP]"]
    assert view.roles == ["special", "content", "content", "punctuation", "content", "special"]
    assert view.keep.tolist() == [False, True, True, False, True, False]
    np.testing.assert_allclose(view.attention, word_view(attn, WORD_IDS, keep_mask(TOKENS, WORD_IDS,
                                                                                  drop_punctuation=True))[0])
    hidden = 1 - attn[..., [1, 2, 3, 5]].sum(-1)
    np.testing.assert_allclose(view.hidden_mass, hidden)
    tokens_only = apply_view(attn, TOKENS, WORD_IDS, drop_punctuation=False, words=False)
    assert tokens_only.labels == TOKENS and tokens_only.attention.shape == attn.shape
    # an input of special tokens only: nothing left to drop to, so nothing is dropped
    special_only = apply_view(np.full((1, 1, 2, 2), 0.5), ["[CLS]", "[SEP]"], [None, None])
    assert special_only.keep.tolist() == [True, True]
