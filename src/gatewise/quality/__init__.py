"""Quality: per-response scores and feedback, A/B experiments (`experiments.py`, reported by
`experiment_report.py`) and evaluation runs (`evaluate.py`)."""
