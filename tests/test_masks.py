"""Hand-worked and property tests of faulttune.masks (docs/methods.md §1.2, §2.2, §3.2, §4).

Two tokenizers with predictable tokens:
* ``word``: a WordLevel tokenizer whose pre-tokenizer splits on the regex below, so the tokens are
  runs of letters/digits, single "_", runs of punctuation and runs of whitespace (a newline and the
  next line's indentation form ONE token, which exercises the first-character line rule);
* SmolLM2's real tokenizer (its tokens are written out next to each expectation);
plus ``bos``: SmolLM2's tokenizer with a post-processor that prepends BOS by default.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from faulttune.masks import (
    char_marks_to_token_marks,
    d_minus_mask,
    edited_chars,
    fgit_masks,
    first_diff_token,
    line_marks_to_char_marks,
    middle_segments,
    split_lines,
)

WORD_PATTERN = r"[A-Za-z0-9]+|_|[^A-Za-z0-9_\s]+|\s+"


@pytest.fixture(scope="module")
def word():
    from tokenizers import Regex, Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(models.WordLevel({"[UNK]": 0}, unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.Split(Regex(WORD_PATTERN), behavior="isolated")
    return PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="[UNK]")


@pytest.fixture(scope="module")
def smol():
    from faulttune.models import load_tokenizer

    return load_tokenizer("smollm2-135m-instruct")


@pytest.fixture(scope="module")
def bos(smol):
    from tokenizers import Tokenizer
    from tokenizers.processors import TemplateProcessing
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer.from_str(smol.backend_tokenizer.to_str())
    bos_token = "<|endoftext|>"
    bos_id = smol.convert_tokens_to_ids(bos_token)
    backend.post_processor = TemplateProcessing(
        single=f"{bos_token} $A", pair=f"{bos_token} $A $B", special_tokens=[(bos_token, bos_id)]
    )
    tok = PreTrainedTokenizerFast(
        tokenizer_object=backend, bos_token=bos_token, eos_token="<|im_end|>"
    )
    tok.chat_template = smol.chat_template
    assert tok("x").input_ids[0] == bos_id
    assert tok("x").input_ids[1:] == smol("x").input_ids
    return tok


def tokens(tok, text):
    return tok.convert_ids_to_tokens(tok(text, add_special_tokens=False).input_ids)


def pieces(tok, text):
    """The text of each token, cut with the offset mapping (the word tokenizer's ids are all UNK)."""
    enc = tok(text, add_special_tokens=False, return_offsets_mapping=True)
    return [text[s:e] for s, e in enc["offset_mapping"]]


# ----------------------------------------------------------------------------------------------
# token-id functions


@pytest.mark.parametrize(
    "a, b, expected",
    [
        ([1, 2, 3], [1, 2, 4], 2),
        ([1, 2], [1, 2, 3], 2),     # the shorter one ending is a difference
        ([5], [], 0),
        ([1, 2, 3], [1, 2, 3], None),
        ([], [], None),
    ],
)
def test_first_diff_token(a, b, expected):
    assert first_diff_token(a, b) == expected


@pytest.mark.parametrize(
    "chosen, rejected, expected_c, expected_r",
    [
        ([1, 2, 3, 4, 5], [1, 2, 9, 4, 5], [0, 0, 1, 0, 0], [0, 0, 1, 0, 0]),
        ([1, 2, 3, 4], [1, 7, 8, 9, 4], [0, 1, 1, 0], [0, 1, 1, 1, 0]),
        # prefix [1, 2]; a naive suffix would be [2, 1] and overlap the prefix on the chosen side
        ([1, 2, 1], [1, 2, 2, 1], [0, 0, 0], [0, 0, 1, 0]),
        ([1, 2, 3], [1, 2, 3, 3], [0, 0, 0], [0, 0, 0, 1]),
        ([4, 4], [4, 4], [0, 0], [0, 0]),
        ([], [7], [], [1]),
    ],
)
def test_middle_segments(chosen, rejected, expected_c, expected_r):
    assert middle_segments(chosen, rejected) == (expected_c, expected_r)


# ----------------------------------------------------------------------------------------------
# character-level helpers


def test_split_lines_keeps_newlines_and_carriage_returns():
    assert split_lines("a\r\nb\rc\nd") == ["a\r\n", "b\rc\n", "d"]
    assert split_lines("a\n") == ["a\n"]
    assert split_lines("") == []
    assert line_marks_to_char_marks("ab\r\nc", [1, 0]) == [1, 1, 1, 1, 0]
    with pytest.raises(ValueError, match="2 line marks for a text of 1 lines"):
        line_marks_to_char_marks("abc", [0, 1])


def test_edited_chars_marks_both_neighbours_of_an_insertion():
    # "<" -> "<=": insert "=" at source position 3, so chars 2 ("<") and 3 (" ") are marked
    assert edited_chars("a < b", "a <= b") == ([0, 0, 1, 1, 0], [0, 0, 0, 1, 0, 0])
    assert edited_chars("ab", "abc") == ([0, 1], [0, 0, 1])  # insertion at the end: p = 2 absent
    assert edited_chars("abc", "ac") == ([0, 1, 0], [0, 0])   # deletion: correct side only


def test_char_marks_to_token_marks_rules():
    offsets = [(0, 0), (0, 2), (2, 5), (5, 6)]  # a zero-width special token first
    marks = [0, 1, 0, 0, 0, 1]
    assert char_marks_to_token_marks(offsets, marks) == [0, 1, 0, 1]
    assert char_marks_to_token_marks(offsets, marks, first_char=True) == [0, 0, 0, 1]
    # the marked text starts at character 2 of the tokenised text; token (0, 2) lies before it
    shifted = char_marks_to_token_marks(offsets, [1, 0, 0], char_offset=2)
    assert shifted == [0, 0, 1, 0]
    # a token starting before the marked text never takes a line from it
    assert char_marks_to_token_marks([(1, 4)], [1, 1], char_offset=2, first_char=True) == [0]


# ----------------------------------------------------------------------------------------------
# hand-worked FGit / IterPref masks, word tokenizer


def test_operator_change_word(word):
    c, i = "if a < b:\n    return x\n", "if a <= b:\n    return x\n"
    assert pieces(word, c) == ["if", " ", "a", " ", "<", " ", "b", ":", "\n    ", "return", " ",
                               "x", "\n"]
    assert fgit_masks(c, i, word, "line") == ([1] * 9 + [0] * 4, [1] * 9 + [0] * 4)
    assert fgit_masks(c, i, word, "token") == (
        [0, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0, 0, 0],  # "<" and the space after it (insertion point)
        [0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0],  # "<="
    )
    assert fgit_masks(c, i, word) == (
        [1, 1, 1, 1, 2, 2, 1, 1, 1, 0, 0, 0, 0],
        [1, 1, 1, 1, 2, 1, 1, 1, 1, 0, 0, 0, 0],
    )
    assert d_minus_mask(c, i, word) == [1] * 9 + [0] * 4


def test_inserted_line_word(word):
    c, i = "x = 1\ny = 2\n", "x = 1\nz = 3\ny = 2\n"
    # c: x, " ", =, " ", 1, \n, y, " ", =, " ", 2, \n ; "z = 3\n" is inserted at char 6
    assert fgit_masks(c, i, word, "line") == ([0] * 12, [0] * 6 + [1] * 6 + [0] * 6)
    # the correct side has no removed line; the insertion marks "\n" (char 5) and "y" (char 6)
    assert fgit_masks(c, i, word, "token") == (
        [0, 0, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0], [0] * 6 + [1] * 6 + [0] * 6
    )
    assert fgit_masks(c, i, word) == ([0, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 0],
                                      [0] * 6 + [2] * 6 + [0] * 6)
    assert d_minus_mask(c, i, word) == [0] * 6 + [1] * 6 + [0] * 6


def test_deleted_line_word(word):
    c, i = "x = 1\nz = 3\ny = 2\n", "x = 1\ny = 2\n"
    assert fgit_masks(c, i, word) == ([0] * 6 + [2] * 6 + [0] * 6, [0] * 12)
    assert d_minus_mask(c, i, word) == [0] * 12  # D- is empty: nothing only in rejected


def test_change_inside_multi_token_identifier_word(word):
    c, i = "total_count = my_value_x\n", "total_count = my_valve_x\n"
    assert pieces(word, c) == ["total", "_", "count", " ", "=", " ", "my", "_", "value", "_", "x",
                               "\n"]
    assert fgit_masks(c, i, word) == ([1] * 8 + [2] + [1] * 3, [1] * 8 + [2] + [1] * 3)


def test_change_on_last_line_without_newline_word(word):
    c, i = "a = 1\nb = 2", "a = 1\nb = 3"
    assert fgit_masks(c, i, word) == ([0] * 6 + [1] * 4 + [2], [0] * 6 + [1] * 4 + [2])
    assert d_minus_mask(c, i, word) == [0] * 6 + [1] * 5


def test_only_missing_final_newline_flags_the_last_line_word(word):
    # ndiff sees "b = 2\n" vs "b = 2": the last line is flagged on both sides (documented)
    c, i = "a = 1\nb = 2\n", "a = 1\nb = 2"
    assert fgit_masks(c, i, word) == ([0] * 6 + [1] * 5 + [2], [0] * 6 + [1] * 5)


def test_identical_strings_word(word):
    code = "def f(x):\n    return x + 1\n"
    n = len(pieces(word, code))
    for granularity in ("line", "token", "hybrid"):
        assert fgit_masks(code, code, word, granularity) == ([0] * n, [0] * n)
    assert d_minus_mask(code, code, word) == [0] * n
    assert fgit_masks("", "", word) == ([], [])


def test_crlf_line_ends_word(word):
    c, i = "if a < b:\r\n    return x\r\n", "if a <= b:\r\n    return x\r\n"
    assert pieces(word, c)[8] == "\r\n    "
    assert fgit_masks(c, i, word) == (
        [1, 1, 1, 1, 2, 2, 1, 1, 1, 0, 0, 0, 0],
        [1, 1, 1, 1, 2, 1, 1, 1, 1, 0, 0, 0, 0],
    )
    c2, i2 = "a = 1\r\nb = 2\r\n", "a = 1\r\nb = 3\r\n"
    assert fgit_masks(c2, i2, word) == ([0] * 6 + [1, 1, 1, 1, 2, 1],) * 2


def test_unknown_granularity_is_rejected(word):
    with pytest.raises(ValueError, match="granularity must be one of"):
        fgit_masks("a", "b", word, "char")


# ----------------------------------------------------------------------------------------------
# hand-worked masks, SmolLM2 tokenizer


def test_operator_change_smollm2(smol):
    c, i = "if a < b:\n    return x\n", "if a <= b:\n    return x\n"
    assert tokens(smol, c) == ["if", "Ġa", "Ġ<", "Ġb", ":", "ĊĠĠĠ", "Ġreturn", "Ġx", "Ċ"]
    assert tokens(smol, i) == ["if", "Ġa", "Ġ<=", "Ġb", ":", "ĊĠĠĠ", "Ġreturn", "Ġx", "Ċ"]
    # "Ġ<" holds "<", "Ġb" holds the space after it; "ĊĠĠĠ" starts on line 0
    assert fgit_masks(c, i, smol) == ([1, 1, 2, 2, 1, 1, 0, 0, 0], [1, 1, 2, 1, 1, 1, 0, 0, 0])
    assert d_minus_mask(c, i, smol) == [1, 1, 1, 1, 1, 1, 0, 0, 0]


def test_inserted_and_deleted_line_smollm2(smol):
    c, i = "x = 1\ny = 2\n", "x = 1\nz = 3\ny = 2\n"
    assert tokens(smol, c) == ["x", "Ġ=", "Ġ", "1", "Ċ", "y", "Ġ=", "Ġ", "2", "Ċ"]
    assert fgit_masks(c, i, smol) == ([0, 0, 0, 0, 2, 2, 0, 0, 0, 0], [0] * 5 + [2] * 5 + [0] * 5)
    assert fgit_masks(i, c, smol) == ([0] * 5 + [2] * 5 + [0] * 5, [0] * 10)
    assert d_minus_mask(c, i, smol) == [0] * 5 + [1] * 5 + [0] * 5


def test_multi_token_identifier_smollm2(smol):
    c, i = "total_count = my_value_x\n", "total_count = my_valve_x\n"
    assert tokens(smol, i) == ["total", "_", "count", "Ġ=", "Ġmy", "_", "val", "ve", "_", "x", "Ċ"]
    # "value" is one token in c; in i the edited "v" (char 20) sits in "ve" only
    assert fgit_masks(c, i, smol) == ([1] * 6 + [2] + [1] * 3, [1] * 7 + [2] + [1] * 3)


def test_last_line_and_crlf_smollm2(smol):
    assert fgit_masks("a = 1\nb = 2", "a = 1\nb = 3", smol) == (
        [0, 0, 0, 0, 0, 1, 1, 1, 2], [0, 0, 0, 0, 0, 1, 1, 1, 2]
    )
    c, i = "a = 1\r\nb = 2\r\n", "a = 1\r\nb = 3\r\n"
    assert tokens(smol, c) == ["a", "Ġ=", "Ġ", "1", "č", "Ċ", "b", "Ġ=", "Ġ", "2", "čĊ"]
    assert fgit_masks(c, i, smol) == ([0] * 6 + [1, 1, 1, 2, 1],) * 2


def test_bos_tokenizer_gives_the_same_masks(smol, bos):
    c, i = "if a < b:\n    return x\n", "if a <= b:\n    return x\n"
    assert fgit_masks(c, i, bos) == fgit_masks(c, i, smol)
    assert d_minus_mask(c, i, bos) == d_minus_mask(c, i, smol)
    # with the BOS in the encoding, its empty span takes no mark and the rest is not shifted
    enc = bos(c, return_offsets_mapping=True)
    line_chars = line_marks_to_char_marks(c, [1, 0])
    marks = char_marks_to_token_marks(enc["offset_mapping"], line_chars, first_char=True)
    assert marks == [0] + [1] * 6 + [0] * 3


# ----------------------------------------------------------------------------------------------
# properties

CODE_ALPHABET = "ab_x1 =<+:()\n\r\t"
code_text = st.text(alphabet=CODE_ALPHABET, max_size=40)
PROPS = settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _n_tokens(tok, text):
    return len(tok(text, add_special_tokens=False).input_ids)


@PROPS
@given(c=code_text, i=code_text)
def test_mask_lengths_equal_token_counts(smol, word, c, i):
    for tok in (smol, word):
        for granularity in ("line", "token", "hybrid"):
            h_c, h_i = fgit_masks(c, i, tok, granularity)
            assert (len(h_c), len(h_i)) == (_n_tokens(tok, c), _n_tokens(tok, i))
        assert len(d_minus_mask(c, i, tok)) == _n_tokens(tok, i)


@PROPS
@given(c=code_text)
def test_identical_inputs_give_zeros(smol, c):
    h_c, h_i = fgit_masks(c, c, smol)
    assert set(h_c) <= {0} and set(h_i) <= {0}
    assert set(d_minus_mask(c, c, smol)) <= {0}


@PROPS
@given(c=code_text, i=code_text)
def test_hybrid_is_line_plus_token_with_tokens_on_edited_lines(smol, c, i):
    line = fgit_masks(c, i, smol, "line")
    token = fgit_masks(c, i, smol, "token")
    hybrid = fgit_masks(c, i, smol, "hybrid")
    for l_side, t_side, h_side in zip(line, token, hybrid):
        for l_, t, h in zip(l_side, t_side, h_side):
            assert h in (0, 1, 2)
            assert (h == 2) == (t == 1)         # a token mark always sits on an edited line
            assert h >= l_
            assert h == 0 or l_ == 1 or t == 1  # nothing is marked from nowhere
    assert d_minus_mask(c, i, smol) == line[1]


@PROPS
@given(c=code_text, i=code_text)
def test_bos_tokenizer_never_shifts_masks(smol, bos, c, i):
    assert fgit_masks(c, i, bos) == fgit_masks(c, i, smol)


@PROPS
@given(a=st.lists(st.integers(0, 3), max_size=12), b=st.lists(st.integers(0, 3), max_size=12))
def test_middle_segments_properties(a, b):
    m_a, m_b = middle_segments(a, b)
    assert (len(m_a), len(m_b)) == (len(a), len(b))
    first = first_diff_token(a, b)
    if first is None:
        assert sum(m_a) == sum(m_b) == 0
        return
    assert not any(m_a[:first]) and not any(m_b[:first])
    # the unmasked tail is a common suffix, and removing the middles leaves equal sequences
    kept_a = [x for x, m in zip(a, m_a) if not m]
    kept_b = [x for x, m in zip(b, m_b) if not m]
    assert kept_a == kept_b
    assert sum(m_a) + sum(m_b) >= 1
