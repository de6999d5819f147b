"""lm: recurrent and n-gram language models on versioned artifacts."""

__version__ = "0.1.0"
