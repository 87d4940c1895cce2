"""OpenAI's chat completions wire format, spoken by OpenAI, Azure and every compatible host."""
