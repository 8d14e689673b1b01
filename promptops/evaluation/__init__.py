"""Evaluation building blocks: test cases from data files, the assertion catalogue, run records and reports.

Each module is one concept and none talks to Triton: the runner injects what needs a model
(`embed` for `similar`, `judge` for `llm-rubric`). See docs/evaluation.md.
"""
