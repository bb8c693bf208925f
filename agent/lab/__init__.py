"""The reproduction harness: real labelled data, models trained on isotopes, detection measured (issue 6)."""
