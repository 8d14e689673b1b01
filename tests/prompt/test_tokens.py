"""Prompt lengths in the model's own tokens, checked against its context before Triton (promptops.tokens)."""

import re

import pytest

from promptops.errors import ContextTooLong
from promptops.prompt import tokens
from promptops.triton import launcher as triton
from tests.conftest import ECHO_REPOSITORY

SMOLLM2 = "HuggingFaceTB/SmolLM2-135M-Instruct"
TWO_PLUS_TWO = "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n"


@pytest.mark.parametrize(("text", "max_tokens", "expected"), [
    ("a b  c", 10, 3),
    ("w " * 2047, None, 2047),  # no max_tokens: the rest of the context, so one token of room is enough
    ("w " * 2000, 48, 2000),
    ("w " * 2000, 100, "the prompt is 2,000 tokens and asks for up to 100 more, over the 2,048-token context of "
                       "echo\n  fix: send fewer history turns or a shorter message, or lower max_tokens (at most 48 fits)"),
    ("w " * 2048, None, "the prompt is 2,048 tokens, which leaves no room for an answer in the 2,048-token context"),
])
def test_the_echo_models_context_is_checked_with_its_own_tokenizer(text, max_tokens, expected):
    if isinstance(expected, int):
        assert tokens.check_fits("echo", text, max_tokens, [ECHO_REPOSITORY]) == expected
    else:
        with pytest.raises(ContextTooLong, match=re.escape(expected)):
            tokens.check_fits("echo", text, max_tokens, [ECHO_REPOSITORY])


@pytest.mark.parametrize("model_json", [None, '{"model": "./missing", "max_model_len": 8}', '{"model": "org/absent"}'])
def test_a_model_without_a_tokenizer_or_context_is_not_checked(tmp_path, model_json):
    if model_json is not None:
        (tmp_path / "m" / "1").mkdir(parents=True)
        (tmp_path / "m" / "1" / "model.json").write_text(model_json)
    assert tokens.check_fits("m", "w " * 10_000, 10, [tmp_path]) is None


def test_smollm2_counts_as_vllm_does():
    if triton.hub_snapshot(triton.TritonConfig().hf_home, SMOLLM2) is None:
        pytest.skip(f"{SMOLLM2} is not in the Hugging Face cache (scripts/setup-serving.sh prepares it)")
    # 16: transformers' AutoTokenizer(text).input_ids in .venv-serve, which is what vLLM counts
    # (tests/triton/test_vllm.py checks the engine's own num_input_tokens against it).
    assert tokens.count("smollm2-135m", TWO_PLUS_TWO, [triton.REPO_ROOT / "model_repository"]) == 16
