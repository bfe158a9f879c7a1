"""apl: active preference learning for large language models (Muldrew et al., ICML 2024)."""

__version__ = "0.1.0"
