"""Loading raw text into documents and splits (the first pipeline stage's input side)."""
