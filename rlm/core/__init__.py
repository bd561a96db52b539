"""The root loop: prompts, code-block parsing, FINAL/FINAL_VAR, iteration limits, recursion."""
