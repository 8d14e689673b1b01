"""One router per resource: health, prompts, chat, openai, seed, metrics."""
