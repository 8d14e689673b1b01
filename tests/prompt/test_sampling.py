"""One definition of the sampling keys (promptops/prompt/sampling.py): the schema and vLLM must agree with it."""

from __future__ import annotations

import json
import subprocess

import pytest

from promptops.prompt import sampling
from promptops.prompt.schema import schema
from promptops.triton import launcher as triton
from tests.conftest import require_serving

# The public SamplingParams fields of the installed vLLM, read in the serving environment.
VLLM_FIELDS = """
from vllm.sampling_params import SamplingParams
print(" ".join(f for f in SamplingParams.__struct_fields__ if not f.startswith("_")))
"""


def test_the_schema_config_is_generated_from_sampling_py():
    # On failure: paste sampling.schema_properties() into $defs.config.properties of the schema file.
    assert schema()["$defs"]["config"]["properties"] == sampling.schema_properties()


def test_sampling_py_has_every_key_the_installed_vllm_accepts():
    # The echo model's side: tests/triton/test_echo.py::test_the_schema_and_the_echo_model_accept_every_key.
    require_serving()
    python = triton.locate(triton.TritonConfig().python_env).python
    out = subprocess.run([str(python), "-c", VLLM_FIELDS], capture_output=True, text=True, check=True, timeout=300)
    fields = set(out.stdout.split())
    assert fields - set(sampling.NOT_ACCEPTED) == set(sampling.KEYS) - set(sampling.BACKEND_KEYS)
    assert set(sampling.NOT_ACCEPTED) <= fields


STRUCTURED_FIELDS = """
import dataclasses
from vllm.sampling_params import StructuredOutputsParams
print(" ".join(f.name for f in dataclasses.fields(StructuredOutputsParams) if not f.name.startswith("_")))
"""


def test_the_structured_output_fields_are_the_installed_vllms():
    require_serving()
    python = triton.locate(triton.TritonConfig().python_env).python
    out = subprocess.run([str(python), "-c", STRUCTURED_FIELDS], capture_output=True, text=True, check=True, timeout=300)
    assert set(out.stdout.split()) == {*sampling.STRUCTURED_CONSTRAINTS, *sampling.STRUCTURED_OPTIONS}


@pytest.mark.parametrize(("params", "expected"), [
    ('{"temperature": "0.5", "max_tokens": "7", "seed": 3.0}', {"temperature": 0.5, "max_tokens": 7, "seed": 3}),
    ({"ignore_eos": "false", "skip_special_tokens": 1, "top_k": None}, {"ignore_eos": False, "skip_special_tokens": True}),
    ({"logit_bias": {"42": "-1"}, "stop": "END"}, {"logit_bias": {42: -1.0}, "stop": "END"}),
    ({"structured_outputs": '{"choice": ["a"]}'}, {"structured_outputs": {"choice": ["a"]}}),
    ("", {}),
])
def test_parse_converts_like_the_seed_format(params, expected):
    assert sampling.parse(params) == expected


@pytest.mark.parametrize(("params", "message"), [
    ({"temprature": 1}, "unknown sampling parameter 'temprature'"),
    ({"max_tokens": "many"}, "max_tokens must be a number"),
    ({"max_tokens": 2.5}, "max_tokens must be an integer"),
    ({"temperature": "nan"}, "temperature must be a number"),
    ({"ignore_eos": "maybe"}, "ignore_eos must be true or false"),
    ({"stop_token_ids": ["x"]}, "stop_token_ids must be a list of integers"),
    ("[1]", "must be a JSON object"),
    ("{", "not valid JSON"),
])
def test_parse_rejects_with_the_key_named(params, message):
    with pytest.raises(ValueError, match=message):
        sampling.parse(params)


def test_the_client_sends_numbers_and_leaves_what_the_model_must_judge():
    sent = sampling.normalise({"top_p": "0.95", "max_tokens": "many", "delay_ms": "5"})
    assert sent == {"top_p": 0.95, "max_tokens": "many", "delay_ms": "5"}
    assert json.loads(json.dumps(sent)) == sent
