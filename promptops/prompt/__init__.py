"""The prompt file format: the model of a prompt (`model`), its name rule (`names`), validation with
located problems (`schema`), rendering (`render`, `chat_template`), the sampling contract (`sampling`),
the model's tokenizer and context (`tokens`) and the semantic diff (`diff`). Nothing here touches git
or a model server."""
