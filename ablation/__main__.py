from ablation.cli import entry_point

entry_point()
