"""The request contract of a `vllm` Triton model, defined once: sampling keys and extra outputs.

Every place that speaks the contract reads it from here: the prompt schema's
`config` (tests/prompt/test_sampling.py checks `schemas/prompt.schema.json` against
`schema_properties()`), the CPU `vllm` backend and the echo test model (both run
inside Triton's stub with another Python and load this file by path, so it
imports nothing from promptops and nothing outside the standard library), and
the inference client.

Sampling keys are the fields of the installed vLLM's `SamplingParams` (0.32)
that a JSON request can set, minus `NOT_ACCEPTED`, plus the keys NVIDIA's vLLM
backend reads itself (`lora_name`, `guided_decoding`). Bounds are the prompt
schema's policy for prompt files; on the wire the engine checks ranges itself.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Key:
    """One sampling key: its JSON kind and, where prompt files are limited, bounds."""

    name: str
    kind: str  # one of KINDS
    title: str
    description: str = ""
    minimum: float | None = None
    maximum: float | None = None
    exclusive_minimum: float | None = None


# JSON kinds a key can have on the wire.
KINDS = ("number", "integer", "boolean", "string", "stop", "integer_list", "string_list",
         "integer_matrix", "logit_bias", "object", "object_or_json")

_KEYS = (
    Key("temperature", "number", "Temperature", "Randomness; 0 is greedy. 0 to 2.", 0, 2),
    Key("top_p", "number", "Top p", "Nucleus sampling mass, greater than 0 and at most 1.", maximum=1,
        exclusive_minimum=0),
    Key("top_k", "integer", "Top k", "Sample from the k most likely tokens; -1 or 0 disables.", -1),
    Key("min_p", "number", "Min p", "Minimum token probability relative to the most likely one, 0 to 1.", 0, 1),
    Key("max_tokens", "integer", "Max tokens", "Most tokens to generate, 1 to 32768.", 1, 32768),
    Key("min_tokens", "integer", "Min tokens", "Fewest tokens to generate before a stop may end the answer.",
        0, 32768),
    Key("stop", "stop", "Stop", "A string or list of strings that end generation."),
    Key("seed", "integer", "Seed", "Random seed for reproducible sampling.", 0, 4294967295),
    Key("presence_penalty", "number", "Presence penalty", "-2 to 2.", -2, 2),
    Key("frequency_penalty", "number", "Frequency penalty", "-2 to 2.", -2, 2),
    Key("repetition_penalty", "number", "Repetition penalty", "Greater than 0 and at most 2; 1 disables.",
        maximum=2, exclusive_minimum=0),
    Key("ignore_eos", "boolean", "Ignore EOS", "Keep generating past the end-of-sequence token."),
    Key("skip_special_tokens", "boolean", "Skip special tokens"),
    Key("n", "integer", "Answers", "Answers per request; promptops serves one.", 1, 1),
    Key("stop_token_ids", "integer_list", "Stop token ids", "Token ids that end generation."),
    Key("include_stop_str_in_output", "boolean", "Include stop string", "Keep the stop string in the answer."),
    Key("spaces_between_special_tokens", "boolean", "Spaces between special tokens"),
    Key("bad_words", "string_list", "Bad words", "Words the model may not generate."),
    Key("logit_bias", "logit_bias", "Logit bias", "Token id -> bias added to its logit (-100 to 100)."),
    Key("allowed_token_ids", "integer_list", "Allowed token ids", "Only these tokens may be generated."),
    Key("logprobs", "integer", "Logprobs", "Log probabilities to return per generated token (the chosen one "
        "is always included); -1 for the whole vocabulary."),
    Key("prompt_logprobs", "integer", "Prompt logprobs", "Log probabilities to return per prompt token."),
    Key("prompt_logprob_token_ids", "integer_matrix", "Prompt logprob token ids",
        "Token ids to score per prompt row."),
    Key("prompt_logprob_start", "integer", "Prompt logprob start", "First prompt row to score."),
    Key("logprob_token_ids", "integer_list", "Logprob token ids", "Token ids whose logprobs to return."),
    Key("flat_logprobs", "boolean", "Flat logprobs", "vLLM's compact logprobs layout (same JSON here)."),
    Key("detokenize", "boolean", "Detokenize", "Turn tokens into text (false leaves the text empty)."),
    Key("stream_interval", "integer", "Stream interval", "Tokens batched into each streamed response."),
    Key("structured_outputs", "object_or_json", "Structured outputs",
        "vLLM structured output constraints (json, regex, choice, grammar, ...)."),
    Key("extra_args", "object", "Extra arguments", "Free-form arguments for custom sampling plugins."),
    Key("watermarking", "boolean", "Watermarking", "Apply the engine's configured watermark."),
    Key("skip_reading_prefix_cache", "boolean", "Skip reading the prefix cache"),
    Key("thinking_token_budget", "integer", "Thinking token budget", "Most tokens for reasoning."),
    Key("repetition_detection", "object", "Repetition detection", "End generation on repeated n-grams."),
    Key("routed_experts_prompt_start", "integer", "Routed experts prompt start", "Debugging (MoE routing)."),
    Key("trace_decode_token_ids", "integer_list", "Trace decode token ids", "Debugging: force these tokens."),
    # Read by NVIDIA's vLLM backend itself, not by SamplingParams.
    Key("lora_name", "string", "LoRA adapter", "Name of a LoRA adapter in the model's multi_lora.json."),
    Key("guided_decoding", "object_or_json", "Guided decoding", "Older name of structured_outputs."),
)

KEYS: dict[str, Key] = {key.name: key for key in _KEYS}
# Keys NVIDIA's backend takes out of sampling_parameters before building SamplingParams.
BACKEND_KEYS = ("lora_name", "guided_decoding")
# vLLM's StructuredOutputsParams (0.32): exactly one constraint, plus options. The value of the
# `structured_outputs` key (a JSON string, or an object) and of `guided_decoding` holds these fields.
STRUCTURED_CONSTRAINTS = ("json", "regex", "choice", "grammar", "json_object", "structural_tag")
STRUCTURED_OPTIONS = ("disable_any_whitespace", "disable_additional_properties", "whitespace_pattern")
# guided_decoding's `backend`: NVIDIA's backend accepts only these (the engine picks the backend).
GUIDED_BACKENDS = ("xgrammar", "xgrammar:no-fallback", "auto", "xgrammar:_auto")
# SamplingParams fields a request cannot set, and why.
NOT_ACCEPTED = {
    "output_kind": "the backend decides how outputs are streamed (per-token deltas)",
    "skip_clone": "vLLM-internal flag",
    "output_text_buffer_length": "vLLM sets it itself ('not supposed to be used as an input')",
}

# The engine side of the contract (model.json -> AsyncEngineArgs): keys that mean something else
# (or nothing) on a CPU are dropped there, with a note.
CPU_IGNORED_ENGINE_KEYS = {
    "gpu_memory_utilization": "on CPU it reserves that fraction of all RAM and fails when less is free; "
                              "the KV cache size comes from VLLM_CPU_KVCACHE_SPACE (GiB)",
    "num_gpu_blocks_override": "no GPU blocks on CPU",
    "cpu_offload_gb": "the weights already live in CPU memory",
    "disable_custom_all_reduce": "a CUDA all-reduce setting",
}
# Keys older vLLMs (and NVIDIA's examples) accepted that this vLLM refuses.
RETIRED_ENGINE_KEYS = ("swap_space", "use_v2_block_manager", "worker_use_ray", "engine_use_ray",
                       "max_seq_len_to_capture", "cuda_graph_sizes", "preemption_mode", "tokenizer_pool_size", "device")

# The optional inputs that ask for extra outputs, and those outputs (NVIDIA vllm_backend's contract).
RETURN_FLAGS = ("return_finish_reason", "return_cumulative_logprob", "return_logprobs",
                "return_num_input_tokens", "return_num_output_tokens")
INPUTS = (
    {"name": "text_input", "data_type": "TYPE_STRING", "dims": [1]},
    {"name": "stream", "data_type": "TYPE_BOOL", "dims": [1], "optional": True},
    {"name": "sampling_parameters", "data_type": "TYPE_STRING", "dims": [1], "optional": True},
    {"name": "exclude_input_in_output", "data_type": "TYPE_BOOL", "dims": [1], "optional": True},
    *({"name": flag, "data_type": "TYPE_BOOL", "dims": [1], "optional": True} for flag in RETURN_FLAGS),
)
OUTPUTS = (
    {"name": "text_output", "data_type": "TYPE_STRING", "dims": [-1]},
    {"name": "finish_reason", "data_type": "TYPE_STRING", "dims": [-1]},
    {"name": "cumulative_logprob", "data_type": "TYPE_FP32", "dims": [-1]},
    {"name": "logprobs", "data_type": "TYPE_STRING", "dims": [-1]},
    {"name": "num_input_tokens", "data_type": "TYPE_UINT32", "dims": [1]},
    {"name": "num_output_tokens", "data_type": "TYPE_UINT32", "dims": [-1]},
)


def declare_tensors(config: Any) -> Any:
    """Add the contract's INPUTS and OUTPUTS that a model's `auto_complete_config` object does not declare yet
    (Triton's Python backend API: `as_dict`, `add_input`, `add_output`); for the CPU backend and the echo model."""
    declared = config.as_dict()
    have_in = {t["name"] for t in declared.get("input", [])}
    have_out = {t["name"] for t in declared.get("output", [])}
    for spec in INPUTS:
        if spec["name"] not in have_in:
            config.add_input(spec)
    for spec in OUTPUTS:
        if spec["name"] not in have_out:
            config.add_output(spec)
    return config


def _number(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(f"{name} must be a number, got {value!r}")
    try:
        number = float(value)
    except ValueError:
        raise ValueError(f"{name} must be a number, got {value!r}") from None
    if number != number or number in (float("inf"), float("-inf")):
        raise ValueError(f"{name} must be a number, got {value!r}")
    return number


def _integer(name: str, value: Any) -> int:
    number = _number(name, value)
    if number != int(number):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    return int(number)


def _boolean(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false", "1", "0"):
        return value.strip().lower() in ("true", "1")
    if isinstance(value, int | float) and value in (0, 1):
        return bool(value)
    raise ValueError(f"{name} must be true or false, got {value!r}")


def _strings(name: str, value: Any) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"{name} must be a list of strings, got {value!r}")
    return value


def _integers(name: str, value: Any) -> list[int]:
    try:
        if not isinstance(value, list):
            raise ValueError
        return [_integer(name, v) for v in value]
    except ValueError:
        raise ValueError(f"{name} must be a list of integers, got {value!r}") from None


def _object(name: str, value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ValueError(f"{name} must be a JSON object, got {value!r}")
    return value


def coerce(name: str, value: Any) -> Any:
    """`value` as the Python type `name` takes; numbers may be numeric strings ("0.95"). ValueError if not."""
    kind = KEYS[name].kind
    if kind == "number":
        return _number(name, value)
    if kind == "integer":
        return _integer(name, value)
    if kind == "boolean":
        return _boolean(name, value)
    if kind == "string":
        if not isinstance(value, str):
            raise ValueError(f"{name} must be a string, got {value!r}")
        return value
    if kind == "stop":
        return value if isinstance(value, str) else _strings(name, value)
    if kind == "string_list":
        return _strings(name, value)
    if kind == "integer_list":
        return _integers(name, value)
    if kind == "integer_matrix":
        if not isinstance(value, list):
            raise ValueError(f"{name} must be a list of lists of integers, got {value!r}")
        return [_integers(name, row) for row in value]
    if kind == "logit_bias":
        return {_integer(f"{name} token id", k): _number(name, v) for k, v in _object(name, value).items()}
    if kind == "object_or_json" and isinstance(value, str):
        try:  # NVIDIA's backend takes these as JSON text inside the JSON
            value = json.loads(value)
        except ValueError:
            raise ValueError(f"{name} must be a JSON object, got {value!r}") from None
    return _object(name, value)


def parse(raw: str | bytes | Mapping[str, Any] | None, extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The `sampling_parameters` JSON as keyword arguments; ValueError naming the first bad key.

    Null values are dropped (the engine's default applies), as NVIDIA's backend does.
    `extra` maps further accepted keys to a converter (the echo model's test knobs).
    """
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8")
    if isinstance(raw, str):
        try:
            raw = json.loads(raw) if raw.strip() else {}
        except ValueError as exc:
            raise ValueError(f"sampling_parameters is not valid JSON: {exc}") from None
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise ValueError("sampling_parameters must be a JSON object")
    out: dict[str, Any] = {}
    for name, value in raw.items():
        if extra and name in extra:
            out[name] = extra[name](name, value)
        elif name not in KEYS:
            raise ValueError(f"unknown sampling parameter {name!r}")
        elif value is not None:
            out[name] = coerce(name, value)
    return out


def structured_outputs(kwargs: dict[str, Any]) -> dict[str, Any] | None:
    """Take `structured_outputs` and `guided_decoding` out of parsed `kwargs`; return the one constraint's
    StructuredOutputsParams fields (None when neither is set), as NVIDIA's backend and vLLM check them:
    guided_decoding is the same fields plus a `backend` that may only be xgrammar/auto, structured_outputs
    wins when both are sent, unknown fields and zero or several constraints are errors (ValueError)."""
    guided = kwargs.pop("guided_decoding", None)
    fields = kwargs.pop("structured_outputs", None)
    if guided is not None:
        guided = dict(guided)
        backend = guided.pop("backend", None)
        if backend is not None and backend not in GUIDED_BACKENDS:
            raise ValueError(f"guided_decoding.backend is no longer supported request-level. Provided: {backend}")
        fields = guided if fields is None else fields
    if fields is None:
        return None
    unknown = sorted(set(fields) - set(STRUCTURED_CONSTRAINTS) - set(STRUCTURED_OPTIONS))
    if unknown:
        raise ValueError(f"unknown structured_outputs field {unknown[0]!r}; one of "
                         f"{', '.join(STRUCTURED_CONSTRAINTS)} is the constraint")
    count = sum(fields.get(name) is not None for name in STRUCTURED_CONSTRAINTS)
    if count != 1:
        raise ValueError(f"structured_outputs needs exactly one kind of constraint, got {count}: "
                         f"{', '.join(STRUCTURED_CONSTRAINTS)}")
    return dict(fields)


def normalise(params: Mapping[str, Any] | None) -> dict[str, Any]:
    """Known keys with convertible values in their wire type ("256" -> 256); anything else unchanged.

    For clients: what a model would reject is still sent as is, so the model reports it.
    """
    out = dict(params or {})
    for name, value in out.items():
        if name in KEYS and value is not None:
            try:
                out[name] = coerce(name, value)
            except ValueError:
                pass
    return out


_NUMERIC = {"number": ("number", "numericString"), "integer": ("integer", "integerString")}


def _property(key: Key) -> dict[str, Any]:
    prop: dict[str, Any] = {"title": key.title}
    if key.description:
        prop["description"] = key.description
    if key.kind in _NUMERIC:
        json_type, string_def = _NUMERIC[key.kind]
        branch: dict[str, Any] = {"type": json_type}
        for word, bound in (("minimum", key.minimum), ("exclusiveMinimum", key.exclusive_minimum),
                            ("maximum", key.maximum)):
            if bound is not None:
                branch[word] = bound
        prop["anyOf"] = [branch, {"$ref": f"#/$defs/{string_def}"}]
    elif key.kind == "stop":
        prop["anyOf"] = [{"type": "string", "minLength": 1},
                         {"type": "array", "items": {"type": "string", "minLength": 1}, "maxItems": 16}]
    elif key.kind in ("boolean", "string"):
        prop["type"] = key.kind
    elif key.kind == "string_list":
        prop.update(type="array", items={"type": "string"})
    elif key.kind == "integer_list":
        prop.update(type="array", items={"type": "integer"})
    elif key.kind == "integer_matrix":
        prop.update(type="array", items={"type": "array", "items": {"type": "integer"}})
    elif key.kind == "logit_bias":
        prop.update(type="object", propertyNames={"pattern": "^-?[0-9]+$"}, additionalProperties={"type": "number"})
    elif key.kind == "object_or_json":
        prop["anyOf"] = [{"type": "object"}, {"type": "string"}]
    else:
        prop["type"] = "object"
    return prop


def schema_properties() -> dict[str, dict[str, Any]]:
    """The prompt schema's `$defs.config.properties`, as schemas/prompt.schema.json must hold them."""
    return {key.name: _property(key) for key in _KEYS}
