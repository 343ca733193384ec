# Models arrive with the activations issue.
