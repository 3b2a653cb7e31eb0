"""What users run: ``prompt-restore``, the served model, the HTML report, the seed study and the colours they share."""
