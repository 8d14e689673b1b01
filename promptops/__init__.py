"""promptops: prompts as code, versioned in git, tested and served through Triton."""

__version__ = "0.1.0"
